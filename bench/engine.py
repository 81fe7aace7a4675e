"""The engine in-process: the reference evaluator (the baseline), the durable-rules pool one
call per input and in batches, and GoRules' zen-engine deciding the same rules."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from rules_service.domain.ruleset import Ruleset
from rules_service.engine import EnginePool, ReferenceEvaluator

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BATCH = 100


def _rate(run: Callable[[], int]) -> float:
    """Best-of-REPEATS evaluations per second."""
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def _zen(rs: Ruleset, inputs: list[dict[str, Any]], reference: ReferenceEvaluator
         ) -> dict[str, Any]:
    """zen-engine's rate and its agreement with the reference on every input."""
    try:
        from bench.zen_rules import ZenRules

        zen = ZenRules(rs)
    except ImportError as exc:
        return {"installed": False, "note": f"pip install -e '.[bench]' ({exc})"}
    expected = reference.evaluate_many(rs, inputs)
    agree_fired = agree_outcome = 0
    for data, ref in zip(inputs, expected, strict=True):
        fired, outcome = zen.evaluate(data)
        agree_fired += fired == tuple(ref.fired_ids)
        agree_outcome += outcome == ref.outcome.value

    def single() -> int:
        for data in inputs:
            zen.evaluate(data)
        return len(inputs)

    return {"installed": True, "evals_per_s": round(_rate(single), 1),
            "agree_fired_rules": agree_fired, "agree_outcome": agree_outcome,
            "inputs": len(inputs)}


def run(rs: Ruleset, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Evaluations per second of each evaluator, as ratios to the reference evaluator."""
    reference = ReferenceEvaluator()
    figures: dict[str, float] = {}

    def ref_single() -> int:
        for data in inputs:
            reference.evaluate(rs, data)
        return len(inputs)

    with EnginePool(workers=1) as engine:
        engine.evaluate_many(rs, inputs[:BATCH])  # warm-up: start the worker, compile

        def engine_single() -> int:
            for data in inputs:
                engine.evaluate(rs, data)
            return len(inputs)

        def engine_batched() -> int:
            for i in range(0, len(inputs), BATCH):
                engine.evaluate_many(rs, inputs[i:i + BATCH])
            return len(inputs)

        # The engine must agree with the reference on every benchmark input.
        disagreements = sum(
            a.fired_ids != b.fired_ids
            for a, b in zip(engine.evaluate_many(rs, inputs),
                            reference.evaluate_many(rs, inputs), strict=True))
        figures["reference_evals_per_s"] = _rate(ref_single)
        figures["engine_single_evals_per_s"] = _rate(engine_single)
        figures["engine_batched_evals_per_s"] = _rate(engine_batched)
        latencies = []
        for data in inputs[:1000]:
            start = time.perf_counter()
            engine.evaluate(rs, data)
            latencies.append((time.perf_counter() - start) * 1000)
    zen = _zen(rs, inputs, reference)
    if zen.get("installed"):
        figures["zen_engine_evals_per_s"] = zen["evals_per_s"]
    base = figures["reference_evals_per_s"]
    qs = statistics.quantiles(latencies, n=100)
    return {
        "ruleset": rs.name, "rules": len(rs.rules), "inputs": len(inputs), "batch_size": BATCH,
        "baseline": "reference_evals_per_s (plain-Python evaluator, same run)",
        "figures": {k: round(v, 1) for k, v in figures.items()},
        "ratios_vs_baseline": {k: round(v / base, 4) for k, v in figures.items()},
        "engine_single_latency_ms": {"p50": round(qs[49], 3), "p95": round(qs[94], 3),
                                     "p99": round(qs[98], 3)},
        "engine_reference_disagreements": disagreements,
        "zen_engine": zen,
    }
