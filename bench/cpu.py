"""CPU time per request: the user + system time of a server's whole process tree (the
gunicorn master, its workers, the engine's worker processes) and, on PostgreSQL, of the
database's backends serving the bench database, read from ``/proc/<pid>/stat`` before and
after a wrk run and divided by the requests answered.

Wall-time figures (req/s, p99) move with whatever else the machine runs; CPU per request
much less, so it is the guide for what each step of a request costs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system seconds of one live process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_pids(root: int) -> dict[str, list[int]]:
    """The master, its direct children (gunicorn workers) and everything below them."""
    try:
        master = psutil.Process(root)
        workers = master.children(recursive=False)
        below = [p for w in workers for p in w.children(recursive=True)]
    except psutil.Error:
        return {"master": [], "workers": [], "engine": []}
    return {"master": [root], "workers": [w.pid for w in workers],
            "engine": [p.pid for p in below]}


@dataclass
class CpuSample:
    """CPU seconds per part of a server's tree (and of the database's backends)."""

    parts: dict[str, float]

    def minus(self, earlier: CpuSample) -> dict[str, float]:
        return {k: v - earlier.parts.get(k, 0.0) for k, v in self.parts.items()}


def sample(root: int, database_pids: list[int] | None = None) -> CpuSample:
    """The CPU seconds so far of each part of the tree under ``root`` (and of the given
    database backends: the same list before and after a run, so a backend that appeared
    meanwhile is not counted from zero)."""
    parts = {name: sum(process_cpu_s(pid) for pid in pids)
             for name, pids in tree_pids(root).items()}
    parts["api"] = parts.pop("master") + parts.pop("workers")
    if database_pids is not None:
        parts["database"] = sum(process_cpu_s(pid) for pid in database_pids)
    return CpuSample(parts)


def per_request_ms(before: CpuSample, after: CpuSample, requests: int) -> dict[str, Any]:
    """Milliseconds of CPU per request answered, per part and for the whole tree."""
    spent = after.minus(before)
    if not requests:
        return {k: None for k in (*spent, "tree")}
    out: dict[str, Any] = {k: round(1000 * v / requests, 3) for k, v in spent.items()}
    out["tree"] = round(1000 * sum(spent.values()) / requests, 3)
    return out


def postgres_backends(dsn: str, database: str) -> Callable[[], list[int]]:
    """A function listing the pids of the PostgreSQL backends connected to ``database``
    (the service's pool; the bench's own query connection is excluded)."""
    import psycopg

    def pids() -> list[int]:
        with contextlib.suppress(psycopg.Error), psycopg.connect(
                dsn, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (database,)).fetchall()
            return [int(r[0]) for r in rows]
        return []
    return pids
