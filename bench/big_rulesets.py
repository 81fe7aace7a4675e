"""Big policies beside the small one, in one run: the 12-rule example policy, a 5,000-row
decision table and 3,000 plain rules, decided by the engine alone (one worker) and through
the app (Flask's test client over a throwaway database of each kind, dry runs one at a
time and batches of 1,000 recorded), with the time to load the table's file.

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
from rules_service.domain.ruleset import Ruleset
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


def _p50_ms(call: Callable[[dict[str, Any]], Any], inputs: list[dict[str, Any]]) -> float:
    times = []
    for data in inputs:
        started = time.perf_counter()
        call(data)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def _engine(ruleset: Ruleset, raw: list[dict[str, Any]]) -> dict[str, Any]:
    inputs = [validate_input(ruleset, d) for d in raw]
    reference = ReferenceEvaluator()
    with EnginePool(workers=1) as pool:
        pool.evaluate(ruleset, inputs[0])
        p50 = _p50_ms(lambda d: pool.evaluate(ruleset, d), inputs[:N_SINGLE])
        started = time.perf_counter()
        got = pool.evaluate_many(ruleset, inputs)
        seconds = time.perf_counter() - started
    wrong = sum(g.fired_ids != reference.evaluate(ruleset, d).fired_ids or g.fallback
                for g, d in zip(got, inputs, strict=True))
    return {"single_p50_ms": p50, "batch_per_s": round(len(inputs) / seconds, 1),
            "disagreements_with_reference": wrong}


def _through_app(kind: str, cases: dict[str, Any]) -> dict[str, Any]:
    from api import create_app
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings

    out: dict[str, Any] = {}
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
            for _ in range(2):  # the rulesets take turns; each figure is the better round's
                for label, (_, raw) in cases.items():
                    base = bases[label]
                    p50 = _p50_ms(lambda d, b=base: post(  # type: ignore[misc]
                        f"{b}/evaluate", {"input": d, "dry_run": True}, "demo-automation"),
                        raw[:N_SINGLE])
                    started = time.perf_counter()
                    post(f"{base}/evaluate-batch", {"inputs": raw[:N_BATCH]}, "demo-automation")
                    rate = round(N_BATCH / (time.perf_counter() - started), 1)
                    best = out.setdefault(label, {"single_dry_run_p50_ms": p50,
                                                  "batch_of_1000_per_s": rate})
                    best["single_dry_run_p50_ms"] = min(best["single_dry_run_p50_ms"], p50)
                    best["batch_of_1000_per_s"] = max(best["batch_of_1000_per_s"], rate)
        finally:
            container.close()
    return out


def _ratios(figures: dict[str, Any]) -> dict[str, Any]:
    """The goals: the table's p50 within 2x of the policy's and its batch rate at least 25%
    of it; the plain rules at least 1,000 decisions/s batched."""
    policy, table, plain = figures["policy"], figures["table"], figures["plain"]
    p50_key = next(k for k in policy if k.endswith("p50_ms"))
    rate_key = next(k for k in policy if k.endswith("per_s"))
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
    engine = {label: _engine(load_ruleset_definition(copy.deepcopy(d)), raw)
              for label, (d, raw) in cases.items()}
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
