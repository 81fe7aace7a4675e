"""Decision rollups: decisions counted per ruleset, minute, version, outcome and fallback.

Written in the caller's transaction (the decision writer's), so a rollup never counts a
decision that was not stored, nor misses one that was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from rules_service.adapters.orm import HISTOGRAM_COLUMNS, decision_rollups
from rules_service.domain.figures import latency_bucket

_KEY = ("ruleset_id", "bucket_start", "version", "outcome", "fallback")


@dataclass(frozen=True)
class RolledDecision:
    """What the rollups need of one recorded decision."""

    ruleset_id: int
    version: int
    evaluated_at: datetime
    outcome: str
    fallback: bool
    duration_ms: float


def bucket_start(at: datetime) -> datetime:
    """The minute a timestamp is counted in."""
    return at.replace(second=0, microsecond=0)


def rollup_rows(decisions: Iterable[RolledDecision]) -> list[dict[str, Any]]:
    """The decisions aggregated per rollup key, sorted by key."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in decisions:
        key = (d.ruleset_id, bucket_start(d.evaluated_at), d.version, d.outcome, d.fallback)
        row = rows.get(key)
        if row is None:
            row = dict(zip(_KEY, key, strict=True))
            row.update(count=0, duration_sum=0.0, duration_max=0.0)
            row.update(dict.fromkeys(HISTOGRAM_COLUMNS, 0))
            rows[key] = row
        row["count"] += 1
        row["duration_sum"] += d.duration_ms
        row["duration_max"] = max(row["duration_max"], d.duration_ms)
        row[HISTOGRAM_COLUMNS[latency_bucket(d.duration_ms)]] += 1
    return [rows[k] for k in sorted(rows)]


def add_decisions(connection: Connection, decisions: Iterable[RolledDecision]) -> None:
    """Counts decisions into the rollups in the caller's transaction: one upsert statement,
    rows in key order so concurrent writers lock them in the same order."""
    rows = rollup_rows(decisions)
    if not rows:
        return
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(decision_rollups).values(rows)
    table, new = decision_rollups.c, stmt.excluded
    biggest = func.greatest if dialect == "postgresql" else func.max
    updates: dict[str, Any] = {
        "count": table.count + new.count,
        "duration_sum": table.duration_sum + new.duration_sum,
        "duration_max": biggest(table.duration_max, new.duration_max),
        **{name: table[name] + new[name] for name in HISTOGRAM_COLUMNS},
    }
    connection.execute(stmt.on_conflict_do_update(index_elements=list(_KEY), set_=updates))
