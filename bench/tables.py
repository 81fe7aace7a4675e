"""Benchmark of a 5,000-row decision table: load time, evaluations per second single and
batched through the engine pool, against the reference evaluator in the same run.

``run()`` returns the figures as a dict (bench/run.py prints and stores them);
``python -m bench.tables`` prints them alone.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import yaml

from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.domain.inputs import validate_input
from rules_service.engine import EnginePool, ReferenceEvaluator, compile_ruleset

ROWS = int(os.environ.get("BENCH_TABLE_ROWS", "5000"))
N_SINGLE = int(os.environ.get("BENCH_TABLE_SINGLE", "100"))
N_BATCH = int(os.environ.get("BENCH_TABLE_BATCH", "400"))

CATEGORIES = ["hardware", "software", "services", "travel", "office", "marketing", "training",
              "facilities", "legal", "research"]
REGIONS = ["eu", "us", "apac", "latam", "mea"]
OWNERS = {"business_owner": {"primary": "finance-lead", "backup": "finance-deputy"},
          "operations_owner": {"primary": "ops-oncall", "backup": "ops-lead"},
          "approver": {"primary": "controller", "backup": "cfo"},
          "maintainer": {"primary": "rules-dev", "backup": "platform-dev"}}


def grid_definition(rows: int = ROWS, name: str = "purchase-grid") -> dict[str, Any]:
    """A ruleset whose one table has ``rows`` rows: category x region x amount bands of 100."""
    bands = max(1, rows // (len(CATEGORIES) * len(REGIONS)))
    table_rows: list[dict[str, Any]] = []
    for c, category in enumerate(CATEGORIES):
        for r, region in enumerate(REGIONS):
            for b in range(bands):
                if len(table_rows) == rows:
                    break
                lo, hi = b * 100, b * 100 + 99
                # Lower bands are ordered straight away, middle ones reviewed, the top refused;
                # where the line falls depends on the category and region.
                cut = (bands // 3) + (c + r) % 7
                then = "approve" if b < cut else "escalate" if b < 2 * cut else "reject"
                row: dict[str, Any] = {"id": f"{category}-{region}-{b}",
                                       "when": [category, region, f"{lo}..{hi}"], "then": then}
                table_rows.append(row)
    while len(table_rows) < rows:  # rows not a multiple of the grid: catch-all bands on top
        n = len(table_rows)
        table_rows.append({"id": f"top-{n}", "when": ["-", "-", f"> {bands * 100 + n}"],
                           "then": "reject"})
    tests = [{"name": f"row {row['id']}",
              "input": {"category": row["when"][0], "region": row["when"][1],
                        "amount": int(row["when"][2].split("..")[0]) + 50},
              "expect": {"outcome": row["then"], "fired": [f"grid.{row['id']}"]}}
             for row in table_rows[:: max(1, rows // 20)] if ".." in row["when"][2]]
    return {
        "name": name, "title": "Purchase grid",
        "description": "Per category, region and amount band of 100, what a purchase needs.",
        "owners": OWNERS, "signoff": ["business_owner", "approver"],
        "inputs": {"category": {"type": "string", "required": True, "enum": CATEGORIES},
                   "region": {"type": "string", "required": True, "enum": REGIONS},
                   "amount": {"type": "integer", "required": True, "minimum": 0}},
        "tables": [{"id": "grid", "columns": ["category", "region", "amount"],
                    "rows": table_rows}],
        "default": "escalate", "fallback": "escalate", "tests": tests,
        "runbook": {"purpose": "Benchmark and large-table test ruleset.",
                    "escalation": {"path": ["controller"], "response_time_target": "4h"}},
    }


def grid_inputs(n: int, seed: int = 7, top: int = 10_000) -> list[dict[str, Any]]:
    """Varied inputs for the grid, a few beyond every band."""
    rng = random.Random(seed)
    return [{"category": rng.choice(CATEGORIES), "region": rng.choice(REGIONS),
             "amount": rng.randint(0, top + 500)} for _ in range(n)]


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def run() -> dict[str, Any]:
    """Figures for a ROWS-row table ruleset; decisions are checked against the reference."""
    text = yaml.safe_dump(grid_definition(), sort_keys=False)
    started = time.perf_counter()
    ruleset = load_ruleset_text(text)
    load_s = time.perf_counter() - started
    compiled = compile_ruleset(ruleset)
    inputs = [validate_input(ruleset, d) for d in grid_inputs(max(N_SINGLE, N_BATCH))]
    reference = ReferenceEvaluator()

    started = time.perf_counter()
    expected = [reference.evaluate(ruleset, d) for d in inputs[:N_BATCH]]
    reference_s = time.perf_counter() - started

    with EnginePool(workers=2) as pool:
        started = time.perf_counter()
        first = pool.evaluate(ruleset, inputs[0])
        first_s = time.perf_counter() - started
        pool.evaluate_many(ruleset, inputs[:4])  # the second worker loads it too
        started = time.perf_counter()
        single = [pool.evaluate(ruleset, d) for d in inputs[:N_SINGLE]]
        single_s = time.perf_counter() - started
        started = time.perf_counter()
        batched = pool.evaluate_many(ruleset, inputs[:N_BATCH])
        batch_s = time.perf_counter() - started
    disagreements = sum(
        got.fired_ids != want.fired_ids or got.outcome is not want.outcome or got.fallback
        for got, want in zip([*single, *batched], [*expected[:N_SINGLE], *expected],
                             strict=True))
    return {
        "rows": len(ruleset.rules),
        "engine_shards": len(compiled.shards),
        "load_file_s": round(load_s, 3),
        "first_evaluation_s (worker loads the shards)": round(first_s, 3),
        "first_evaluation_fallback": first.fallback,
        "engine_single_per_s": _rate(len(single), single_s),
        "engine_batched_per_s (2 workers)": _rate(len(batched), batch_s),
        "reference_per_s": _rate(len(expected), reference_s),
        "decisions_compared": len(single) + len(batched),
        "disagreements_with_reference": disagreements,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
