"""The batch write path alone: ``write_decisions`` of 1,000 decisions per transaction (a
fifth escalating, no idempotency keys, as evaluate-batch sends them) on a throwaway
database, by COPY and by INSERT with many parameter sets, alternating; then the fold of
what was written. Wall time per transaction, and the CPU of this process and of the
PostgreSQL backend (what a shared machine leaves comparable).

    .venv/bin/python -m bench.batch_write --database postgresql --rounds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from bench.figures_plans import throwaway
from bench.write_path import _cpu_s, _record
from rules_service.adapters import bulk_insert, migrations_runner, rollup_fold
from rules_service.adapters.database import make_engine
from rules_service.adapters.decision_log import write_decisions
from rules_service.adapters.orm import RulesetRow

PATHS = {"copy": bulk_insert.COPY_FROM, "insert": 10 ** 9}
SIZE = 1000


def _rounds(conn: Connection, ruleset_id: int, first: int, rounds: int,
            backend: int | None) -> dict[str, Any]:
    walls = []
    server, client = _cpu_s(backend) if backend else 0.0, time.process_time()
    for r in range(rounds):
        records = [_record(ruleset_id, first + r * SIZE + k, False) for k in range(SIZE)]
        began = time.perf_counter()
        with conn.begin():
            write_decisions(conn, records)
        walls.append(time.perf_counter() - began)
    return {"wall_ms_median": round(statistics.median(walls) * 1e3, 1),
            "wall_ms_best": round(min(walls) * 1e3, 1),
            "decisions_per_s_median": round(SIZE / statistics.median(walls)),
            "server_cpu_ms": round(((_cpu_s(backend) - server) if backend else 0.0)
                                   / rounds * 1e3, 1),
            "client_cpu_ms (with building the records)": round(
                (time.process_time() - client) / rounds * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line per path and round set, and one for the fold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    with throwaway(args.database, keep=False) as url:
        migrations_runner.upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            rid = conn.execute(insert(RulesetRow).values(
                name="r", title="", created_at=datetime.now(UTC)).returning(RulesetRow.id)
            ).scalar_one()
        written = 0
        for path in [*PATHS, *PATHS]:
            bulk_insert.COPY_FROM = PATHS[path]
            with engine.connect() as conn:
                backend = (int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
                           if args.database == "postgresql" else None)
                conn.commit()
                figures = _rounds(conn, rid, written, args.rounds, backend)
            written += args.rounds * SIZE
            print(json.dumps({"database": args.database, "path": path, "per": SIZE,
                              **figures}))
        began, cpu = time.perf_counter(), time.process_time()
        folded = rollup_fold.fold_pending(engine)
        took = time.perf_counter() - began
        print(json.dumps({"database": args.database, "folded": folded,
                          "fold_s": round(took, 2),
                          "fold_client_cpu_s": round(time.process_time() - cpu, 2),
                          "folded_per_s": round(folded / took)}))
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
