"""Writing the rollups: decisions and escalation resolutions counted into time buckets.

The operations figures (``services.dashboard``, /metrics) read these tables, never the
decisions themselves, so they cost O(buckets) however many decisions there are. The
counting happens in the caller's transaction, on its ``Connection``: for decisions, the
fold's transaction that also deletes their pending rows (``adapters.rollup_fold``); for
resolutions, the resolving transaction. A rollup row commits with what it counts or not
at all, so the figures are exact.

Each function aggregates in Python per key first, then sends one upsert statement per
table (``INSERT .. ON CONFLICT (primary key) DO UPDATE SET count = count +
excluded.count, ..``) with one parameter set per key, sorted by key, so concurrent
writers lock rows in the same order and cannot deadlock one another. Counts and sums
add; maxima take the larger (``GREATEST`` on PostgreSQL, SQLite's two-argument ``MAX``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, Table, func
from sqlalchemy.dialects import postgresql, sqlite

from rules_service.adapters.orm import (
    CYCLE_COLUMNS,
    HISTOGRAM_COLUMNS,
    decision_rollups,
    decision_rollups_daily,
    decision_rollups_hourly,
    decision_totals,
    escalation_rollups,
    escalation_rollups_daily,
    escalation_rollups_hourly,
)
from rules_service.domain import figures


@dataclass(frozen=True)
class RolledDecision:
    """What the rollups need of one recorded decision (``duration_ms`` as recorded)."""

    ruleset_id: int
    version: int
    evaluated_at: datetime
    outcome: str
    fallback: bool
    duration_ms: float


@dataclass(frozen=True)
class RolledResolution:
    """What the rollups need of one resolved escalation."""

    ruleset_id: int
    created_at: datetime
    resolved_at: datetime
    due_at: datetime | None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def floor_to(moment: datetime, unit: timedelta) -> datetime:
    """The start of the UTC minute, hour or day (``unit``) holding the moment."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return EPOCH + (moment - EPOCH) // unit * unit


def minute_start(moment: datetime) -> datetime:
    """The start of the UTC minute holding the moment: the decisions' finest bucket."""
    return floor_to(moment, MINUTE)


@dataclass(frozen=True)
class Tier:
    """One rollup table and the length of its buckets."""

    table: Table
    unit: timedelta


DECISION_TIERS: tuple[Tier, ...] = (Tier(decision_rollups_daily, DAY),
                                    Tier(decision_rollups_hourly, HOUR),
                                    Tier(decision_rollups, MINUTE))
"""The decision rollups, coarsest first; every decision is counted in each."""

ESCALATION_TIERS: tuple[Tier, ...] = (Tier(escalation_rollups_daily, DAY),
                                      Tier(escalation_rollups_hourly, HOUR),
                                      Tier(escalation_rollups, MINUTE))
"""The escalation rollups, coarsest first; every resolution is counted in each."""


def spans(start: datetime, end: datetime, tiers: Sequence[Tier]
          ) -> list[tuple[Table, datetime, datetime]]:
    """The (table, start, end) pieces that cover [start, end) with the fewest buckets:
    whole days from the daily table, the ragged ends in hours, then in minutes.

    ``start`` and ``end`` are on the finest tier's boundaries (whole minutes).
    """
    if start >= end:
        return []
    tier, finer = tiers[0], tiers[1:]
    if not finer:
        return [(tier.table, start, end)]
    first = floor_to(start, tier.unit)
    if first < start:
        first += tier.unit
    last = floor_to(end, tier.unit)
    if first >= last:
        return spans(start, end, finer)
    return [(tier.table, first, last), *spans(start, first, finer), *spans(last, end, finer)]


@dataclass
class _DecisionSums:
    count: int = 0
    duration_sum: float = 0.0
    duration_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * figures.LATENCY_BUCKET_COUNT)

    def add(self, duration_ms: float) -> None:
        self.count += 1
        self.duration_sum += duration_ms
        self.duration_max = max(self.duration_max, duration_ms)
        self.histogram[figures.latency_bucket(duration_ms)] += 1

    def columns(self) -> dict[str, Any]:
        return {"count": self.count, "duration_sum": self.duration_sum,
                "duration_max": self.duration_max,
                **dict(zip(HISTOGRAM_COLUMNS, self.histogram, strict=True))}


@dataclass
class _ResolutionSums:
    resolved: int = 0
    with_target: int = 0
    within_target: int = 0
    seconds_sum: float = 0.0
    seconds_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * figures.CYCLE_BUCKET_COUNT)

    def add(self, resolution: RolledResolution) -> None:
        # A clock that stepped back must not make a negative cycle time.
        seconds = max((resolution.resolved_at - resolution.created_at).total_seconds(), 0.0)
        self.resolved += 1
        if resolution.due_at is not None:
            self.with_target += 1
            if resolution.resolved_at <= resolution.due_at:
                self.within_target += 1
        self.seconds_sum += seconds
        self.seconds_max = max(self.seconds_max, seconds)
        self.histogram[figures.cycle_bucket(seconds)] += 1

    def columns(self) -> dict[str, Any]:
        return {"resolved": self.resolved, "resolved_with_target": self.with_target,
                "resolved_within_target": self.within_target,
                "seconds_sum": self.seconds_sum, "seconds_max": self.seconds_max,
                **dict(zip(CYCLE_COLUMNS, self.histogram, strict=True))}


@functools.cache
def _upsert_statement(table: Table, dialect: str, keys: tuple[str, ...],
                      max_columns: tuple[str, ...]) -> Executable:
    """``INSERT .. ON CONFLICT (keys) DO UPDATE`` adding counts and sums, keeping maxima.

    Built once per table and dialect and run with many parameter sets, so SQLAlchemy
    compiles it once (a multi-row VALUES clause would be compiled again on every call).
    """
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
        greatest: Callable[[Any, Any], ColumnElement[Any]] = func.greatest
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)  # type: ignore[assignment]
        greatest = func.max  # SQLite's MAX with two arguments is the scalar maximum
    else:
        raise NotImplementedError(f"rollups need PostgreSQL or SQLite, not {dialect}")
    excluded = stmt.excluded
    updates = {column.name: (greatest(column, excluded[column.name])
                             if column.name in max_columns else column + excluded[column.name])
               for column in table.columns if column.name not in keys}
    return stmt.on_conflict_do_update(index_elements=[table.c[k] for k in keys], set_=updates)


def _upsert(connection: Connection, table: Table, keys: tuple[str, ...],
            rows: dict[tuple[Hashable, ...], dict[str, Any]], max_columns: tuple[str, ...]
            ) -> None:
    """Adds the rows' figures to the table's rows of the same keys (inserting new keys).

    One statement with one parameter set per key, in key order: psycopg sends them to
    PostgreSQL pipelined in one round trip, SQLite runs the prepared statement per key
    without leaving the process.
    """
    if not rows:
        return
    params = [{**dict(zip(keys, key, strict=True)), **figures_} for key, figures_
              in sorted(rows.items(), key=lambda item: item[0])]
    connection.execute(_upsert_statement(table, connection.dialect.name, keys, max_columns),
                       params)


_DECISION_KEYS = ("ruleset_id", "bucket_start", "version", "outcome", "fallback")
_TOTAL_KEYS = ("ruleset_id", "version", "outcome", "fallback")


def add_decisions(connection: Connection, decisions: Iterable[RolledDecision]) -> None:
    """Counts decisions into the rollups in the caller's transaction.

    Aggregated in Python per key, then one upsert statement per table (minutes, hours,
    days, all-time totals), keys sorted so concurrent writers lock rows in the same
    order. Call it once per decision actually inserted: never for an idempotent replay.
    """
    tiers: list[dict[tuple[Hashable, ...], _DecisionSums]] = [{} for _ in DECISION_TIERS]
    totals: dict[tuple[Hashable, ...], _DecisionSums] = {}
    for d in decisions:
        kind = (d.version, d.outcome, bool(d.fallback))
        ms = float(d.duration_ms)
        for tier, sums in zip(DECISION_TIERS, tiers, strict=True):
            key = (d.ruleset_id, floor_to(d.evaluated_at, tier.unit), *kind)
            sums.setdefault(key, _DecisionSums()).add(ms)
        totals.setdefault((d.ruleset_id, *kind), _DecisionSums()).add(ms)
    for tier, sums in zip(DECISION_TIERS, tiers, strict=True):
        _upsert(connection, tier.table, _DECISION_KEYS,
                {k: v.columns() for k, v in sums.items()}, ("duration_max",))
    _upsert(connection, decision_totals, _TOTAL_KEYS,
            {k: v.columns() for k, v in totals.items()}, ("duration_max",))


def add_resolutions(connection: Connection, resolutions: Iterable[RolledResolution]) -> None:
    """Counts resolved escalations into the escalation rollups in the caller's transaction,
    by ruleset and minute (hour, day) of resolution: one upsert per table, keys sorted."""
    tiers: list[dict[tuple[Hashable, ...], _ResolutionSums]] = [{} for _ in ESCALATION_TIERS]
    for r in resolutions:
        for tier, sums in zip(ESCALATION_TIERS, tiers, strict=True):
            key = (r.ruleset_id, floor_to(r.resolved_at, tier.unit))
            sums.setdefault(key, _ResolutionSums()).add(r)
    for tier, sums in zip(ESCALATION_TIERS, tiers, strict=True):
        _upsert(connection, tier.table, ("ruleset_id", "bucket_start"),
                {k: v.columns() for k, v in sums.items()}, ("seconds_max",))
