"""A large decisions table, fast: real recorded decisions (from the service, so the rows
have exactly its format) copied with new ids and times spread over 30 days, their
escalations, and the rollups of every tier, counted by the service's own
``adapters.rollups`` functions exactly as the recording transaction counts them.

PostgreSQL gets COPY; SQLite gets a Core executemany of driver-ready rows (JSON serialised
once per template, times in SQLAlchemy's SQLite storage format) in large transactions.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine

from bench.common import BenchError
from rules_service.adapters import rollups
from rules_service.adapters.orm import DecisionRow, EscalationRow

DECISIONS = DecisionRow.__table__
ESCALATIONS = EscalationRow.__table__
SPREAD = timedelta(days=30)
CHUNK = 50_000
FALLBACK_SHARE = 0.001
OPEN_ESCALATION_SHARE = 0.05


def count_decisions(url: str) -> int:
    """How many decisions the database holds."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(DECISIONS)).scalar_one())
    finally:
        engine.dispose()


def _templates(engine: Engine, limit: int = 2000) -> list[dict[str, Any]]:
    cols = [DECISIONS.c.ruleset_id, DECISIONS.c.version, DECISIONS.c.input,
            DECISIONS.c.outcome, DECISIONS.c.fired_rules, DECISIONS.c.deciding_rules,
            DECISIONS.c.caller, ESCALATIONS.c.to_role]
    query = select(*cols).select_from(DECISIONS.outerjoin(
        ESCALATIONS, ESCALATIONS.c.decision_id == DECISIONS.c.id)).where(
        DECISIONS.c.fallback.is_(False)).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        raise BenchError("no recorded decisions to copy: record some before seeding")
    for row in rows:  # serialised once, copied a thousand times
        for key in ("input", "fired_rules", "deciding_rules"):
            row[key] = json.dumps(row[key])
    return rows


_EPOCH = datetime(1970, 1, 1)
_MINUTE_US = 60_000_000


def _time_ordered_id(at_us: int, rng: random.Random) -> str:
    """A UUIDv7-shaped id (milliseconds first), so the rows go in index order."""
    h = f"{at_us // 1000:012x}7{rng.getrandbits(76):019x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _rows(templates: list[dict[str, Any]], n: int, before: datetime, rng: random.Random,
          stamp: Callable[[int], str]
          ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None, int]]:
    """(decision, escalation or None, evaluated_at in microseconds since the epoch), in
    time order over [before - 30 days, before); times as the database's text (``stamp``).

    One 64-bit draw per row picks the template, the jitter in time, fallback or not, the
    latency (from a table of log-normal draws) and the escalation's fate: a million rows
    must be made in seconds."""
    step_us = SPREAD.total_seconds() * 1e6 / n
    start_us = int((before - SPREAD).timestamp() * 1e6)
    count = len(templates)
    latencies = [round(min(math.exp(rng.gauss(-1.2, 0.8)), 5000.0), 3) for _ in range(4096)]
    fallback_every = round(1 / FALLBACK_SHARE)
    open_every = round(1 / OPEN_ESCALATION_SHARE)
    draw = rng.getrandbits
    for i in range(n):
        bits = draw(64)
        t = templates[(bits & 0xFFFF) % count]
        at_us = start_us + int((i + ((bits >> 16) & 0xFFFF) / 65536) * step_us)
        fallback = (bits >> 32) % fallback_every == 0
        evaluated_at = stamp(at_us)
        decision = {
            "id": _time_ordered_id(at_us, rng),
            "ruleset_id": t["ruleset_id"], "version": t["version"], "input": t["input"],
            "outcome": "escalate" if fallback else t["outcome"],
            "fired_rules": "[]" if fallback else t["fired_rules"],
            "deciding_rules": "[]" if fallback else t["deciding_rules"],
            "fallback": fallback,
            "fallback_reason": "engine timed out after 2.0 s" if fallback else None,
            "caller": t["caller"], "idempotency_key": None, "request_hash": None,
            "evaluated_at": evaluated_at, "duration_ms": latencies[(bits >> 42) & 0xFFF]}
        escalation = None
        if decision["outcome"] == "escalate":
            is_open = (bits >> 54) % open_every == 0
            resolved_us = at_us + (5 + (bits >> 16) % 595) * _MINUTE_US
            escalation = {
                "id": _time_ordered_id(at_us, rng),
                "decision_id": decision["id"], "decision_evaluated_at": evaluated_at,
                "ruleset_id": t["ruleset_id"],
                "version": t["version"], "to_role": t["to_role"] or "approver",
                "status": "open" if is_open else "resolved",
                "due_at": stamp(at_us + 240 * _MINUTE_US), "created_at": evaluated_at,
                "resolved_at": None if is_open else stamp(resolved_us),
                "resolved_us": None if is_open else resolved_us,
                "resolved_by": None if is_open else "controller",
                "resolution": None if is_open else ("approve", "reject")[bits % 5 == 0],
                "comment": ""}
        yield decision, escalation, at_us


def _micros(at_us: int) -> datetime:
    return datetime.fromtimestamp(at_us / 1e6, UTC)


def _rolled(chunk: list[tuple[dict[str, Any], dict[str, Any] | None, int]]
            ) -> tuple[list[rollups.RolledDecision], list[rollups.RolledResolution]]:
    """What the service's rollups count of a chunk: its decisions and resolutions."""
    decided, resolved = [], []
    for d, e, at_us in chunk:
        at = _micros(at_us)
        decided.append(rollups.RolledDecision(d["ruleset_id"], d["version"], at, d["outcome"],
                                              d["fallback"], d["duration_ms"]))
        resolved_us = e.pop("resolved_us") if e is not None else None
        if resolved_us is not None:
            resolved.append(rollups.RolledResolution(d["ruleset_id"], at, _micros(resolved_us),
                                                     at + timedelta(minutes=240)))
    return decided, resolved


def seed(url: str, n: int, before: datetime, *, seed_value: int = 7) -> dict[str, Any]:
    """Adds ``n`` decisions (with escalations and rollups) evaluated in the 30 days before
    ``before`` (a minute boundary earlier than any decision the service records meanwhile,
    so the seeded rollup buckets never collide with the service's own)."""
    before = before.astimezone(UTC).replace(second=0, microsecond=0)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _fast(dbapi_connection: Any, _record: Any) -> None:
            # Durability does not matter for a throwaway table; seeding speed does.
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    started = time.perf_counter()
    try:
        rng = random.Random(seed_value)
        templates = _templates(engine)
        escalations = 0
        postgres = engine.dialect.name == "postgresql"
        stamp = _pg_stamp if postgres else _sqlite_stamp
        if postgres:  # COPY's text format treats backslashes as escapes
            for t in templates:
                for key in ("input", "fired_rules", "deciding_rules"):
                    t[key] = t[key].replace("\\", "\\\\")
        rows = _rows(templates, n, before, rng, stamp)
        # The database ingests one chunk while the next is made (one write in flight).
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending: Future[None] | None = None
            for offset in range(0, n, CHUNK):
                chunk = [next(rows) for _ in range(min(CHUNK, n - offset))]
                decisions = [d for d, _, _ in chunk]
                opened = [e for _, e, _ in chunk if e is not None]
                # The rollups of every tier the service reads, through its own code.
                decided, resolved = _rolled(chunk)
                escalations += len(opened)
                if pending is not None:
                    pending.result()
                pending = writer.submit(_write, engine, decisions, opened, decided, resolved)
            if pending is not None:
                pending.result()
        if engine.dialect.name == "postgresql":
            # What autovacuum does on its own over 30 days of writes: statistics for the
            # planner, and the visibility map that lets the open-escalation count read its
            # index alone. Left to autovacuum, it would run during the timed reads that
            # follow (a VACUUM of a million fresh rows on a 2-CPU machine) and time them.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
    finally:
        engine.dispose()
    return {"decisions": n, "escalations": escalations,
            "window": [(before - SPREAD).isoformat(), before.isoformat()],
            "seconds": round(time.perf_counter() - started, 1)}


def _write(engine: Engine, decisions: list[dict[str, Any]],
           escalations: list[dict[str, Any]], decided: list[rollups.RolledDecision],
           resolved: list[rollups.RolledResolution]) -> None:
    if engine.dialect.name == "postgresql":
        _copy(engine, "decisions", decisions)
        _copy(engine, "escalations", escalations)
        with engine.begin() as conn:
            rollups.add_decisions(conn, decided)
            rollups.add_resolutions(conn, resolved)
        return
    with engine.begin() as conn:
        _sqlite_insert(conn, "decisions", decisions)
        _sqlite_insert(conn, "escalations", escalations)
        rollups.add_decisions(conn, decided)
        rollups.add_resolutions(conn, resolved)


def _sqlite_stamp(at_us: int) -> str:
    """A UTC time (microseconds since the epoch) in SQLAlchemy's SQLite DATETIME format."""
    return (_EPOCH + timedelta(microseconds=at_us)).isoformat(" ", "microseconds")


def _pg_stamp(at_us: int) -> str:
    """A UTC time (microseconds since the epoch) as PostgreSQL timestamptz text."""
    return (_EPOCH + timedelta(microseconds=at_us)).isoformat(" ", "microseconds") + "+00"


def _sqlite_insert(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """One executemany of driver-ready tuples (JSON already text, times formatted)."""
    if not rows:
        return
    columns = list(rows[0])
    statement = (f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our names
                 f"VALUES ({', '.join('?' for _ in columns)})")
    conn.exec_driver_sql(statement, [tuple(row.values()) for row in rows])


def _pg_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


def _copy(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of dict rows, written as COPY text (JSON already escaped text)."""
    if not rows:
        return
    columns = list(rows[0])
    text = "".join("\t".join(map(_pg_text, row.values())) + "\n" for row in rows)
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        with conn.cursor() as cur:
            # Rows are valid by construction: skip the per-row foreign-key triggers.
            cur.execute("SET session_replication_role = replica")
        with conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(text)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = DEFAULT")
        conn.commit()
    finally:
        raw.close()
