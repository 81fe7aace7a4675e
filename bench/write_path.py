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
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from bench.figures_plans import throwaway
from rules_service.adapters import migrations_runner
from rules_service.adapters.database import make_engine
from rules_service.adapters.decision_log import DecisionRecord, EscalationRecord, write_decisions
from rules_service.adapters.orm import RulesetRow


def _record(ruleset_id: int, i: int, keyed: bool = True) -> DecisionRecord:
    now = datetime.now(UTC)
    escalate = i % 5 == 0
    return DecisionRecord(
        id=str(uuid.uuid4()), ruleset_id=ruleset_id, version=1, input={"amount": i},
        outcome="escalate" if escalate else "approve",
        fired_rules=[{"id": "small", "reason": "amount <= 100"}], deciding_rules=["small"],
        fallback=False, fallback_reason=None, caller="bot",
        idempotency_key=f"k-{i}" if keyed else None,
        request_hash="0" * 64 if keyed else None, evaluated_at=now, duration_ms=0.4,
        escalation=EscalationRecord(str(uuid.uuid4()), "approver", None) if escalate else None)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a local process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line: groups/s and decisions/s, median of the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1, help="decisions per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-keys", action="store_true", help="no idempotency keys")
    args = parser.parse_args(argv)
    with throwaway(args.database, keep=False) as url:
        migrations_runner.upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            rid = conn.execute(insert(RulesetRow).values(name="r", title="", created_at=datetime
                                                         .now(UTC)).returning(RulesetRow.id)
                               ).scalar_one()
        rates = []
        n = 0
        with engine.connect() as conn:
            # CPU time, not wall time, is what a busy machine leaves comparable: the
            # database backend's (PostgreSQL, same host) and this process's.
            backend = (int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
                       if args.database == "postgresql" else None)
            conn.commit()
            server_cpu, client_cpu = _cpu_s(backend) if backend else 0.0, time.process_time()
            for _ in range(args.rounds):
                began = time.perf_counter()
                for _ in range(args.groups):
                    with conn.begin():
                        write_decisions(conn, [_record(rid, n + k, not args.no_keys)
                                               for k in range(args.size)])
                    n += args.size
                rates.append(args.groups / (time.perf_counter() - began))
            transactions = args.groups * args.rounds
            server_us = ((_cpu_s(backend) - server_cpu) if backend else 0.0) / transactions * 1e6
            client_us = (time.process_time() - client_cpu) / transactions * 1e6
        if not args.no_keys:  # a replayed key: nothing inserted (idempotency still exact)
            with engine.connect() as conn, conn.begin():
                assert write_decisions(conn, [_record(rid, 0)]) == set()
        engine.dispose()
    rate = statistics.median(rates)
    print(json.dumps({"database": args.database, "revision": migrations_runner.head_revision(url),
                      "size": args.size, "keys": not args.no_keys,
                      "transactions_per_s": round(rate, 1),
                      "decisions_per_s": round(rate * args.size, 1),
                      "rounds": [round(r, 1) for r in rates],
                      "server_cpu_us_per_transaction": round(server_us),
                      "client_cpu_us_per_transaction": round(client_us)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
