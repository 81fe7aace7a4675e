"""A large decisions table, fast: real recorded decisions (from the service, so the rows
have exactly its format) copied with new ids and times spread over 30 days, their
escalations, and the matching ``decision_rollups`` rows computed here with the service's
bucketing (minute floor of ``evaluated_at`` in UTC, ``figures.latency_bucket``).

PostgreSQL gets COPY; SQLite gets SQLAlchemy Core executemany in large transactions.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.engine import Engine

from rules_service.adapters.orm import (
    HISTOGRAM_COLUMNS,
    DecisionRow,
    EscalationRow,
    decision_rollups,
)
from rules_service.domain.figures import latency_bucket

from bench.common import BenchError

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
    return rows


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _rows(templates: list[dict[str, Any]], n: int, before: datetime, rng: random.Random
          ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(decision, escalation or None) rows, evaluated in [before - 30 days, before)."""
    span_us = int(SPREAD.total_seconds() * 1e6)
    start = before - SPREAD
    for _ in range(n):
        t = templates[rng.randrange(len(templates))]
        at = start + timedelta(microseconds=rng.randrange(span_us))
        fallback = rng.random() < FALLBACK_SHARE
        duration = round(min(rng.lognormvariate(-1.2, 0.8), 5000.0), 3)
        decision = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ruleset_id": t["ruleset_id"], "version": t["version"], "input": t["input"],
            "outcome": "escalate" if fallback else t["outcome"],
            "fired_rules": [] if fallback else t["fired_rules"],
            "deciding_rules": [] if fallback else t["deciding_rules"],
            "fallback": fallback,
            "fallback_reason": "engine timed out after 2.0 s" if fallback else None,
            "caller": t["caller"], "idempotency_key": None, "request_hash": None,
            "evaluated_at": at, "duration_ms": duration}
        escalation = None
        if decision["outcome"] == "escalate":
            is_open = rng.random() < OPEN_ESCALATION_SHARE
            resolved = at + timedelta(minutes=rng.uniform(5, 600))
            escalation = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "decision_id": decision["id"], "ruleset_id": t["ruleset_id"],
                "version": t["version"], "to_role": t["to_role"] or "approver",
                "status": "open" if is_open else "resolved", "due_at": at + timedelta(hours=4),
                "created_at": at, "resolved_at": None if is_open else resolved,
                "resolved_by": None if is_open else "controller",
                "resolution": None if is_open else rng.choice(("approve", "reject")),
                "comment": ""}
        yield decision, escalation


def _rollup(acc: dict[tuple[Any, ...], dict[str, Any]], d: dict[str, Any]) -> None:
    key = (d["ruleset_id"], _minute(d["evaluated_at"]), d["version"], d["outcome"],
           d["fallback"])
    row = acc.get(key)
    if row is None:
        row = acc[key] = {"ruleset_id": key[0], "bucket_start": key[1], "version": key[2],
                          "outcome": key[3], "fallback": key[4], "count": 0,
                          "duration_sum": 0.0, "duration_max": 0.0,
                          **{c: 0 for c in HISTOGRAM_COLUMNS}}
    row["count"] += 1
    row["duration_sum"] += d["duration_ms"]
    row["duration_max"] = max(row["duration_max"], d["duration_ms"])
    row[HISTOGRAM_COLUMNS[latency_bucket(d["duration_ms"])]] += 1


def seed(url: str, n: int, before: datetime, *, seed_value: int = 7) -> dict[str, Any]:
    """Adds ``n`` decisions (with escalations and rollups) evaluated in the 30 days before
    ``before`` (a minute boundary earlier than any decision the service records meanwhile,
    so the seeded rollup buckets never collide with the service's own)."""
    before = _minute(before.astimezone(UTC))
    engine = create_engine(url)
    started = time.perf_counter()
    try:
        rng = random.Random(seed_value)
        templates = _templates(engine)
        rollups: dict[tuple[Any, ...], dict[str, Any]] = {}
        escalations = 0
        rows = _rows(templates, n, before, rng)
        for offset in range(0, n, CHUNK):
            chunk = [next(rows) for _ in range(min(CHUNK, n - offset))]
            decisions = [d for d, _ in chunk]
            opened = [e for _, e in chunk if e is not None]
            for d in decisions:
                _rollup(rollups, d)
            escalations += len(opened)
            _write(engine, decisions, opened)
        _write_rollups(engine, list(rollups.values()))
        if engine.dialect.name == "postgresql":  # what autovacuum would do on its own
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE decisions, escalations, decision_rollups")
                conn.commit()
    finally:
        engine.dispose()
    return {"decisions": n, "escalations": escalations, "rollup_rows": len(rollups),
            "window": [(before - SPREAD).isoformat(), before.isoformat()],
            "seconds": round(time.perf_counter() - started, 1)}


def _write(engine: Engine, decisions: list[dict[str, Any]],
           escalations: list[dict[str, Any]]) -> None:
    if engine.dialect.name == "postgresql":
        _copy(engine, "decisions", decisions)
        _copy(engine, "escalations", escalations)
        return
    with engine.begin() as conn:
        conn.execute(insert(DECISIONS), decisions)
        if escalations:
            conn.execute(insert(ESCALATIONS), escalations)


def _write_rollups(engine: Engine, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        _copy(engine, "decision_rollups", rows)
        return
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(insert(decision_rollups), rows[i:i + CHUNK])


def _copy(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of dict rows (JSON columns as JSON text)."""
    if not rows:
        return
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # noqa: S608
            for row in rows:
                copy.write_row([Jsonb(v) if isinstance(v, dict | list) else v
                                for v in row.values()])
        conn.commit()
    finally:
        raw.close()
