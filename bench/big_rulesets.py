"""Big policies beside the small one, in one run: the 12-rule example policy, a 5,000-row
decision table and 3,000 plain rules, decided by the engine alone (one worker) and through
the app (Flask's test client over a throwaway database of each kind: single evaluations
as dry runs, batches of 1,000 recorded), with the time to load the table's file. The
rulesets take turns input by input, so a busy moment of the machine falls on all three.

``run(kinds)`` returns the figures (bench/run.py stores them under ``results["big"]``);
``python -m bench.big_rulesets [sqlite,postgresql]`` prints them alone.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import inputs as bench_inputs
from bench.common import RULESET_FILE, RULESET_NAME
from bench.databases import throwaway
from bench.tables import CATEGORIES, REGIONS, grid_definition, grid_inputs
from rules_service.adapters.ruleset_files import load_ruleset_definition, load_ruleset_text
from rules_service.domain.inputs import validate_input
from rules_service.engine import EnginePool, ReferenceEvaluator

PLAIN_RULES = int(os.environ.get("BENCH_PLAIN_RULES", "3000"))
N_SINGLE = int(os.environ.get("BENCH_BIG_SINGLE", "200"))
N_BATCH = 1000


def plain_definition(rules: int = PLAIN_RULES, name: str = "purchase-rules") -> dict[str, Any]:
    """``rules`` plain rules keyed by category and region, each on an amount band of 100."""
    definition = grid_definition(1, name=name)
    definition["tables"], definition["tests"] = [], []
    definition["rules"] = [
        {"id": f"r{i}",
         "when": f'category == "{CATEGORIES[i % len(CATEGORIES)]}" and region == '
                 f'"{REGIONS[(i // len(CATEGORIES)) % len(REGIONS)]}" and amount >= '
                 f'{(i // 50) * 100} and amount < {(i // 50) * 100 + 100}',
         "then": ("approve", "escalate", "reject")[i % 3]} for i in range(rules)]
    return definition


def _cases() -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each ruleset's definition and raw inputs."""
    small = yaml.safe_load(RULESET_FILE.read_text(encoding="utf-8"))
    small_rs = load_ruleset_definition(copy.deepcopy(small))
    top = (PLAIN_RULES // 50) * 100
    return {"policy": (small, bench_inputs.raw_inputs(small_rs, N_BATCH)),
            "table": (grid_definition(), grid_inputs(N_BATCH, seed=3)),
            "plain": (plain_definition(), grid_inputs(N_BATCH, seed=5, top=top))}


def _interleaved(labels: list[str], single: Callable[[str, int], Any],
                 batch: Callable[[str], int]) -> dict[str, dict[str, float]]:
    """Single calls in turns (input i of each ruleset, then i+1), so a busy moment of the
    machine falls on all of them alike; then two rounds of batches in turns, the better
    round of each kept."""
    times: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(N_SINGLE):
        for label in labels:
            started = time.perf_counter()
            single(label, i)
            times[label].append(time.perf_counter() - started)
    rates: dict[str, float] = {label: 0.0 for label in labels}
    for _ in range(2):
        for label in labels:
            started = time.perf_counter()
            count = batch(label)
            rates[label] = max(rates[label], count / (time.perf_counter() - started))
    return {label: {"single_p50_ms": round(statistics.median(times[label]) * 1000, 3),
                    "batch_per_s": round(rates[label], 1)} for label in labels}


def _engine(cases: dict[str, Any]) -> dict[str, Any]:
    rulesets = {label: load_ruleset_definition(copy.deepcopy(d))
                for label, (d, _) in cases.items()}
    inputs = {label: [validate_input(rulesets[label], d) for d in raw]
              for label, (_, raw) in cases.items()}
    reference = ReferenceEvaluator()
    with EnginePool(workers=1) as pool:
        for label, ruleset in rulesets.items():
            pool.evaluate(ruleset, inputs[label][0])
        out = _interleaved(
            list(cases), lambda label, i: pool.evaluate(rulesets[label], inputs[label][i]),
            lambda label: len(pool.evaluate_many(rulesets[label], inputs[label])))
        for label, ruleset in rulesets.items():
            got = pool.evaluate_many(ruleset, inputs[label])
            out[label]["disagreements_with_reference"] = sum(
                g.fired_ids != reference.evaluate(ruleset, d).fired_ids or g.fallback
                for g, d in zip(got, inputs[label], strict=True))
    return out


def _through_app(kind: str, cases: dict[str, Any]) -> dict[str, Any]:
    from api import create_app
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings

    out: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="rules-big-") as tmp, \
            throwaway(kind, Path(tmp)) as db, EnginePool(workers=2) as pool:
        container = bootstrap(Settings(database_url=db.url), evaluator=pool)
        try:
            client = create_app(container=container).test_client()

            def post(path: str, body: Any, who: str) -> Any:
                response = client.post(path, json=body,
                                       headers={"Authorization": f"Bearer {db.tokens[who]}"})
                if response.status_code >= 300:
                    raise RuntimeError(f"{path}: {response.status_code} "
                                       f"{response.get_data(as_text=True)[:500]}")
                return response.get_json()

            bases = {}
            for label, (definition, raw) in cases.items():
                name = RULESET_NAME if label == "policy" else definition["name"]
                bases[label] = base = f"/v1/rulesets/{name}"
                if label != "policy":
                    number = post(f"{base}/versions", {"definition": definition},
                                  "demo-admin")["version"]
                    for who in ("finance-lead", "controller"):
                        post(f"{base}/versions/{number}/signoffs", {"decision": "approve"}, who)
                post(f"{base}/evaluate", {"input": raw[0], "dry_run": True}, "demo-automation")
            out = _interleaved(
                list(cases),
                lambda label, i: post(f"{bases[label]}/evaluate",
                                      {"input": cases[label][1][i], "dry_run": True},
                                      "demo-automation"),
                lambda label: len(post(f"{bases[label]}/evaluate-batch",
                                       {"inputs": cases[label][1][:N_BATCH]},
                                       "demo-automation")["decisions"]))
        finally:
            container.close()
    return out


def _ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """The goals: the table's p50 within 2x of the policy's and its batch rate at least 25%
    of it; the plain rules at least 1,000 decisions/s batched."""
    policy, table, plain = figures["policy"], figures["table"], figures["plain"]
    p50_key, rate_key = "single_p50_ms", "batch_per_s"
    return {"table_p50_over_policy": round(table[p50_key] / max(policy[p50_key], 1e-9), 2),
            "table_batch_share_of_policy": round(table[rate_key] / max(policy[rate_key], 1e-9),
                                                 3),
            "plain_batch_per_s": plain[rate_key]}


def run(kinds: list[str] | None = None) -> dict[str, Any]:
    """Every figure, with the goals' ratios beside them."""
    cases = _cases()
    text = yaml.safe_dump(cases["table"][0], sort_keys=False)
    started = time.perf_counter()
    load_ruleset_text(text)
    load_s = time.perf_counter() - started
    engine = _engine(cases)
    result: dict[str, Any] = {"table_rows": len(cases["table"][0]["tables"][0]["rows"]),
                              "plain_rules": PLAIN_RULES,
                              "load_table_file_s": round(load_s, 3),
                              "engine (1 worker)": {**engine, "goals": _ratios(engine)}}
    for kind in kinds or []:
        app = _through_app(kind, cases)
        result[f"app on {kind}"] = {**app, "goals": _ratios(app)}
    return result


if __name__ == "__main__":
    chosen = sys.argv[1].split(",") if len(sys.argv) > 1 else []
    print(json.dumps(run(chosen), indent=2))
