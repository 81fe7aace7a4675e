"""Soak: 200,000 evaluations through the pool leave the worker processes' memory flat.

durable-rules keeps every asserted fact until its state is deleted (without delete_state a
Host runs out of memory after ~1,000 facts), so a leak would show here as RSS growth.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rules_service.engine import EnginePool, ReferenceEvaluator
from tests.unit.engine_support import field, ruleset

TOTAL = 200_000
BATCH = 1000
TOLERANCE_KB = 6 * 1024

RULESET = ruleset(
    (field("amount", "number"), field("category", "string"), field("has_receipt", "boolean"),
     field("applicant", "object", field("country", "string"))),
    [("receipt-required", "amount > 50 and not has_receipt", "reject"),
     ("small-expense", "amount <= 500", "approve"),
     ("big", "amount > 5000 or (category == 'hardware' and amount > 1000)", "escalate"),
     ("foreign", "not (applicant.country in ['DE', 'FR']) or category matches '^tr'",
      "escalate")])


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _batch(start: int) -> list[dict[str, object]]:
    categories = ["meals", "hardware", "travel", "software"]
    batch: list[dict[str, object]] = []
    for i in range(start, start + BATCH):
        data: dict[str, object] = {"amount": (i * 7919) % 9000 + (i % 3) * 0.25,
                                   "category": categories[i % 4], "has_receipt": i % 2 == 0}
        if i % 5:
            data["applicant"] = {"country": ["DE", "US", "FR"][i % 3]}
        batch.append(data)
    return batch


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_hundred_thousand_evaluations_keep_worker_memory_flat() -> None:
    reference = ReferenceEvaluator()
    failures: list[str] = []
    with EnginePool(workers=2, timeout_s=30.0, recycle_after=None) as pool:
        def run(first: int, last: int) -> None:
            for start in range(first, last, BATCH):
                for evaluation in pool.evaluate_many(RULESET, _batch(start)):
                    if evaluation.fallback:
                        failures.append(str(evaluation.fallback_reason))

        # Warm up both workers (imports, first ruleset load, allocator arenas).
        warm = [threading.Thread(target=run, args=(k * 10 * BATCH, (k + 1) * 10 * BATCH))
                for k in range(2)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        pids = pool.worker_pids()
        assert len(pids) == 2
        before = {pid: _rss_kb(pid) for pid in pids}

        half = TOTAL // 2
        threads = [threading.Thread(target=run, args=(k * half, (k + 1) * half))
                   for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert pool.worker_pids() == pids, "a worker was replaced during the soak"
        after = {pid: _rss_kb(pid) for pid in pids}

        sample = _batch(123_000)
        for data, evaluation in zip(sample, pool.evaluate_many(RULESET, sample), strict=True):
            assert evaluation.fired_ids == reference.evaluate(RULESET, data).fired_ids
    growth = {pid: after[pid] - before[pid] for pid in pids}
    print(f"\nworker RSS kB before {before} after {after} growth {growth}")
    assert all(g <= TOLERANCE_KB for g in growth.values()), growth
