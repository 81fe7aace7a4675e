"""``make bench``: throughput and timings, as ratios against a baseline measured in the same run.

Engine: the plain-Python reference evaluator deciding the expense ruleset in-process is the
baseline; the durable-rules engine (isolated worker processes) is measured one call per
input and in batches. Governance: a diff with impact replay over 10,000 recorded decisions
(SQLite, through the service layer), against the baseline of deciding the same inputs with
the reference evaluator. Figures go to bench/results.json and are printed as a table.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.domain.inputs import validate_input
from rules_service.engine import EnginePool, ReferenceEvaluator

ROOT = Path(__file__).resolve().parent.parent
RULESET = ROOT / "rulesets" / "expense-approval.yaml"
RESULTS = ROOT / "bench" / "results.json"
N_INPUTS = int(os.environ.get("BENCH_INPUTS", "4000"))
N_REPLAY = int(os.environ.get("BENCH_REPLAY", "10000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BATCH = 100


def _inputs(ruleset: Any, n: int) -> list[dict[str, Any]]:
    """Valid, varied inputs: the ruleset's own test inputs with numbers jittered."""
    rng = random.Random(42)
    seeds = [t.input for t in ruleset.tests]
    out = []
    while len(out) < n:
        raw = json.loads(json.dumps(rng.choice(seeds)))
        for key, value in raw.items():
            if isinstance(value, float | int) and not isinstance(value, bool):
                raw[key] = type(value)(value * rng.uniform(0.5, 1.5))
        try:
            out.append(validate_input(ruleset, raw))
        except Exception:  # noqa: BLE001, S112 - a jittered value may leave the schema
            continue
    return out


def _rate(run: Callable[[], int]) -> float:
    """Best-of-REPEATS evaluations per second."""
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def governance_figures(engine: EnginePool, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Diff with impact replay over N_REPLAY recorded decisions, on a fresh SQLite database."""
    from rules_service.adapters import schema
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings
    from rules_service.services import diffs, evaluation
    from rules_service.services.demo import DEMO_AUTOMATION, seed_demo

    ruleset = load_ruleset_file(RULESET)
    replay_inputs = (inputs * (N_REPLAY // len(inputs) + 1))[:N_REPLAY]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        schema.upgrade(url, "head")
        container = bootstrap(Settings(database_url=url), evaluator=engine)
        try:
            # The demo leaves expense-approval v1 active and v2 (a raised limit) pending.
            seed_demo(container.uow, engine, ROOT / "rulesets", Path(tmp) / "tokens.json")
            start = time.perf_counter()
            for i in range(0, len(replay_inputs), 1000):
                evaluation.evaluate_batch(container.uow(), engine, ruleset.name,
                                          replay_inputs[i:i + 1000], caller=DEMO_AUTOMATION)
            record_s = time.perf_counter() - start
            start = time.perf_counter()
            result = diffs.diff_versions(container.uow(), engine, ruleset.name,
                                         impact=N_REPLAY).to_dict()
            diff_s = time.perf_counter() - start
        finally:
            container.close()
    reference = ReferenceEvaluator()
    start = time.perf_counter()
    for data in replay_inputs:
        reference.evaluate(ruleset, data)
    baseline_s = time.perf_counter() - start
    impact = result.get("impact") or {}
    return {
        "recorded_decisions": N_REPLAY,
        "record_decisions_per_s": round(N_REPLAY / record_s, 1),
        "diff_with_impact_ms": round(diff_s * 1000, 1),
        "baseline_reference_decide_ms": round(baseline_s * 1000, 1),
        "diff_with_impact_vs_baseline": round(diff_s / baseline_s, 3),
        "replayed": impact.get("replayed"),
        "changed": impact.get("changed"),
        "transitions": impact.get("transitions"),
        "summary": result.get("summary"),
    }


def main() -> int:
    """Runs the benchmark and writes bench/results.json."""
    ruleset = load_ruleset_file(RULESET)
    inputs = _inputs(ruleset, N_INPUTS)
    reference = ReferenceEvaluator()
    figures: dict[str, float] = {}

    def ref_single() -> int:
        for data in inputs:
            reference.evaluate(ruleset, data)
        return len(inputs)

    with EnginePool(workers=1) as engine:
        engine.evaluate_many(ruleset, inputs[:BATCH])  # warm-up: start the worker, compile

        def engine_single() -> int:
            for data in inputs:
                engine.evaluate(ruleset, data)
            return len(inputs)

        def engine_batched() -> int:
            for i in range(0, len(inputs), BATCH):
                engine.evaluate_many(ruleset, inputs[i:i + BATCH])
            return len(inputs)

        # The engine must agree with the reference on every benchmark input.
        disagreements = sum(
            a.fired_ids != b.fired_ids
            for a, b in zip(engine.evaluate_many(ruleset, inputs),
                            reference.evaluate_many(ruleset, inputs), strict=True))
        figures["reference_evals_per_s"] = _rate(ref_single)
        figures["engine_single_evals_per_s"] = _rate(engine_single)
        figures["engine_batched_evals_per_s"] = _rate(engine_batched)
        latencies = []
        for data in inputs[:1000]:
            start = time.perf_counter()
            engine.evaluate(ruleset, data)
            latencies.append((time.perf_counter() - start) * 1000)
        governance = governance_figures(engine, inputs)

    base = figures["reference_evals_per_s"]
    qs = statistics.quantiles(latencies, n=100)
    results = {
        "ruleset": ruleset.name,
        "rules": len(ruleset.rules),
        "inputs": len(inputs),
        "batch_size": BATCH,
        "baseline": "reference_evals_per_s (plain-Python evaluator, same run)",
        "figures": {k: round(v, 1) for k, v in figures.items()},
        "ratios_vs_baseline": {k: round(v / base, 4) for k, v in figures.items()},
        "engine_single_latency_ms": {"p50": round(qs[49], 3), "p95": round(qs[94], 3),
                                     "p99": round(qs[98], 3)},
        "engine_reference_disagreements": disagreements,
        "governance": governance,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": os.cpu_count()},
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'measure':32} {'evals/s':>12} {'x baseline':>11}")
    for key, value in figures.items():
        print(f"{key:32} {value:12.0f} {value / base:11.3f}")
    lat = results["engine_single_latency_ms"]
    print(f"engine single-call latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}")
    print(f"engine/reference disagreements: {disagreements} of {len(inputs)}")
    print(f"diff with impact replay over {governance['recorded_decisions']} decisions: "
          f"{governance['diff_with_impact_ms']} ms "
          f"({governance['diff_with_impact_vs_baseline']}x deciding them with the reference "
          f"evaluator: {governance['baseline_reference_decide_ms']} ms); "
          f"{governance['changed']} outcomes change {governance['transitions']}")
    print(f"recording decisions through the service (batches of 1000): "
          f"{governance['record_decisions_per_s']}/s")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
