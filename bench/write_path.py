"""The decision log's write path alone, before and after a schema change: transactions of
``write_decisions`` per second on a throwaway database, as the group-commit writer sends
them (one transaction per group), every decision with an idempotency key, a fifth of them
escalating.

It imports only what every revision since issue 7 has, so the same file measures an older
checkout: ``PYTHONPATH=/path/to/old/checkout python bench/write_path.py``.

    .venv/bin/python -m bench.write_path --database postgresql --groups 3000 --size 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import insert

from bench.figures_plans import throwaway
from rules_service.adapters import schema
from rules_service.adapters.database import make_engine
from rules_service.adapters.decision_log import DecisionRecord, EscalationRecord, write_decisions
from rules_service.adapters.orm import RulesetRow


def _record(ruleset_id: int, i: int) -> DecisionRecord:
    now = datetime.now(UTC)
    escalate = i % 5 == 0
    return DecisionRecord(
        id=str(uuid.uuid4()), ruleset_id=ruleset_id, version=1, input={"amount": i},
        outcome="escalate" if escalate else "approve",
        fired_rules=[{"id": "small", "reason": "amount <= 100"}], deciding_rules=["small"],
        fallback=False, fallback_reason=None, caller="bot", idempotency_key=f"k-{i}",
        request_hash="0" * 64, evaluated_at=now, duration_ms=0.4,
        escalation=EscalationRecord(str(uuid.uuid4()), "approver", None) if escalate else None)


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line: groups/s and decisions/s, median of the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1, help="decisions per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with throwaway(args.database, keep=False) as url:
        schema.upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            rid = conn.execute(insert(RulesetRow).values(name="r", title="", created_at=datetime
                                                         .now(UTC)).returning(RulesetRow.id)
                               ).scalar_one()
        rates = []
        n = 0
        with engine.connect() as conn:
            for _ in range(args.rounds):
                began = time.perf_counter()
                for _ in range(args.groups):
                    with conn.begin():
                        write_decisions(conn, [_record(rid, n + k) for k in range(args.size)])
                    n += args.size
                rates.append(args.groups / (time.perf_counter() - began))
        # A replayed key: nothing inserted (idempotency still exact).
        with engine.connect() as conn, conn.begin():
            replay = _record(rid, 0)
            assert write_decisions(conn, [replay]) == set()
        engine.dispose()
    rate = statistics.median(rates)
    print(json.dumps({"database": args.database, "revision": schema.head_revision(url),
                      "size": args.size, "transactions_per_s": round(rate, 1),
                      "decisions_per_s": round(rate * args.size, 1),
                      "rounds": [round(r, 1) for r in rates]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
