"""Hourly, daily and all-time decision rollups, escalation rollups (minute, hour, day),
an index covering the open and overdue escalation counts; backfills every rollup from
the rows already recorded.

The backfill reads the decisions in (evaluated_at, id) order (ix_decisions_evaluated_at_id), the
resolved escalations in id order, in chunks (keyset pagination, so each chunk is an
index seek); each chunk is aggregated per bucket and added to the rollups with
``INSERT .. ON CONFLICT DO UPDATE``, so memory holds one chunk however many rows there
are. It counts exactly as ``rules_service.adapters.rollups`` does (same buckets, same
histogram bounds, frozen here so this revision never changes meaning); a test compares
the two.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As rules_service.domain.figures at this revision.
LATENCY_BUCKETS_MS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0,
                      500.0, 1000.0, 2000.0, 5000.0, 10000.0)
CYCLE_BUCKETS_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0,
                   86400.0, 172800.0, 259200.0, 604800.0, 1209600.0, 2592000.0)
HISTOGRAM_COLUMNS = tuple(f"latency_bucket_{i:02d}" for i in range(len(LATENCY_BUCKETS_MS) + 1))
CYCLE_COLUMNS = tuple(f"cycle_bucket_{i:02d}" for i in range(len(CYCLE_BUCKETS_S) + 1))
CHUNK = 20_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def _decision_figures() -> list[sa.Column[Any]]:
    return [sa.Column("count", sa.BigInteger(), nullable=False),
            sa.Column("duration_sum", sa.Float(), nullable=False),
            sa.Column("duration_max", sa.Float(), nullable=False),
            *(sa.Column(name, sa.BigInteger(), nullable=False) for name in HISTOGRAM_COLUMNS)]


def _ruleset_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["ruleset_id"], ["rulesets.id"],
                                   name=f"fk_{table}_ruleset_id_rulesets", ondelete="CASCADE")


DECISION_TABLES = (("decision_rollups", MINUTE), ("decision_rollups_hourly", HOUR),
                   ("decision_rollups_daily", DAY))
ESCALATION_TABLES = (("escalation_rollups", MINUTE), ("escalation_rollups_hourly", HOUR),
                     ("escalation_rollups_daily", DAY))


def _escalation_figures() -> list[sa.Column[Any]]:
    return [sa.Column("resolved", sa.BigInteger(), nullable=False),
            sa.Column("resolved_with_target", sa.BigInteger(), nullable=False),
            sa.Column("resolved_within_target", sa.BigInteger(), nullable=False),
            sa.Column("seconds_sum", sa.Float(), nullable=False),
            sa.Column("seconds_max", sa.Float(), nullable=False),
            *(sa.Column(name, sa.BigInteger(), nullable=False) for name in CYCLE_COLUMNS)]


def _create_tables() -> None:
    for name in ("decision_rollups_hourly", "decision_rollups_daily"):
        op.create_table(
            name,
            sa.Column("ruleset_id", sa.Integer(), nullable=False),
            sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("outcome", sa.String(length=10), nullable=False),
            sa.Column("fallback", sa.Boolean(), nullable=False),
            *_decision_figures(),
            _ruleset_fk(name),
            sa.PrimaryKeyConstraint("ruleset_id", "bucket_start", "version", "outcome",
                                    "fallback", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_bucket_start", name, ["bucket_start"], unique=False)
    op.create_table(
        "decision_totals",
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        *_decision_figures(),
        _ruleset_fk("decision_totals"),
        sa.PrimaryKeyConstraint("ruleset_id", "version", "outcome", "fallback",
                                name="pk_decision_totals"),
    )
    for name, _unit in ESCALATION_TABLES:
        op.create_table(
            name,
            sa.Column("ruleset_id", sa.Integer(), nullable=False),
            sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
            *_escalation_figures(),
            _ruleset_fk(name),
            sa.PrimaryKeyConstraint("ruleset_id", "bucket_start", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_bucket_start", name, ["bucket_start"], unique=False)
    op.create_index("ix_escalations_status_ruleset_id_due_at", "escalations",
                    ["status", "ruleset_id", "due_at"], unique=False)


# --------------------------------------------------------------------------- backfill


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _floor(moment: datetime, unit: timedelta) -> datetime:
    return EPOCH + (_utc(moment) - EPOCH) // unit * unit


Sums = dict[tuple[Any, ...], list[Any]]


def _upsert(connection: sa.Connection, name: str, keys: tuple[str, ...],
            columns: tuple[str, ...], maximum: str, sums: Sums) -> None:
    """Adds the sums to the table's rows of the same keys, inserting new keys."""
    if not sums:
        return
    types: dict[str, Any] = {"bucket_start": sa.DateTime(timezone=True),
                             "fallback": sa.Boolean()}
    table = sa.table(name, *(sa.column(c, types.get(c)) for c in keys + columns))
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    greatest = sa.func.greatest if connection.dialect.name == "postgresql" else sa.func.max
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={
        c: (greatest(table.c[c], stmt.excluded[c]) if c == maximum
            else table.c[c] + stmt.excluded[c]) for c in columns})
    naive = connection.dialect.name == "sqlite"  # SQLite keeps naive UTC, as the app does
    rows = []
    for key in sorted(sums):
        row = dict(zip(keys, key, strict=True))
        if naive and "bucket_start" in row:
            row["bucket_start"] = row["bucket_start"].replace(tzinfo=None)
        row.update(zip(columns, sums[key], strict=True))
        rows.append(row)
    connection.execute(stmt, rows)


def _chunks(connection: sa.Connection, stmt: sa.Select[Any], order: tuple[Any, ...]
            ) -> Iterator[Sequence[Any]]:
    """The rows of stmt in chunks, by keyset pagination on the ``order`` columns."""
    stmt = stmt.order_by(*order).limit(CHUNK)
    last: tuple[Any, ...] | None = None
    while True:
        # A row-value comparison, so both databases seek the index instead of rescanning.
        page = stmt if last is None else stmt.where(
            sa.tuple_(*order) > sa.tuple_(*(sa.literal(v, c.type)
                                            for v, c in zip(last, order, strict=True))))
        rows = connection.execute(page).all()
        if not rows:
            return
        yield rows
        last = tuple(getattr(rows[-1], c.name) for c in order)


def _add_decision(sums: Sums, key: tuple[Any, ...], ms: float) -> None:
    entry = sums.get(key)
    if entry is None:
        entry = sums[key] = [0, 0.0, 0.0] + [0] * len(HISTOGRAM_COLUMNS)
    entry[0] += 1
    entry[1] += ms
    entry[2] = max(entry[2], ms)
    entry[3 + bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1


def _backfill_decisions(connection: sa.Connection) -> None:
    d = sa.table("decisions", sa.column("id", sa.String()), sa.column("ruleset_id"),
                 sa.column("version"), sa.column("outcome"),
                 sa.column("fallback", sa.Boolean()),
                 sa.column("evaluated_at", sa.DateTime(timezone=True)),
                 sa.column("duration_ms", sa.Float()))
    keys = ("ruleset_id", "bucket_start", "version", "outcome", "fallback")
    totals_keys = ("ruleset_id", "version", "outcome", "fallback")
    columns = ("count", "duration_sum", "duration_max", *HISTOGRAM_COLUMNS)
    # Rebuilt from scratch, so the result is exact whatever was counted before.
    connection.execute(sa.text("DELETE FROM decision_rollups"))
    stmt = sa.select(d.c.id, d.c.ruleset_id, d.c.version, d.c.outcome, d.c.fallback,
                     d.c.evaluated_at, d.c.duration_ms)
    for rows in _chunks(connection, stmt, (d.c.evaluated_at, d.c.id)):
        tiers: list[Sums] = [{} for _ in DECISION_TABLES]
        totals: Sums = {}
        for r in rows:
            kind = (r.version, r.outcome, bool(r.fallback))
            ms = float(r.duration_ms)
            for (_name, unit), sums in zip(DECISION_TABLES, tiers, strict=True):
                _add_decision(sums, (r.ruleset_id, _floor(r.evaluated_at, unit), *kind), ms)
            _add_decision(totals, (r.ruleset_id, *kind), ms)
        for (name, _unit), sums in zip(DECISION_TABLES, tiers, strict=True):
            _upsert(connection, name, keys, columns, "duration_max", sums)
        _upsert(connection, "decision_totals", totals_keys, columns, "duration_max", totals)


def _backfill_escalations(connection: sa.Connection) -> None:
    e = sa.table("escalations", sa.column("id", sa.String()), sa.column("ruleset_id"),
                 sa.column("status"), sa.column("created_at", sa.DateTime(timezone=True)),
                 sa.column("resolved_at", sa.DateTime(timezone=True)),
                 sa.column("due_at", sa.DateTime(timezone=True)))
    keys = ("ruleset_id", "bucket_start")
    columns = ("resolved", "resolved_with_target", "resolved_within_target", "seconds_sum",
               "seconds_max", *CYCLE_COLUMNS)
    stmt = (sa.select(e.c.id, e.c.ruleset_id, e.c.created_at, e.c.resolved_at, e.c.due_at)
            .where(e.c.status == "resolved", e.c.resolved_at.is_not(None)))
    for rows in _chunks(connection, stmt, (e.c.id,)):
        tiers: list[Sums] = [{} for _ in ESCALATION_TABLES]
        for r in rows:
            created, resolved = _utc(r.created_at), _utc(r.resolved_at)
            due = _utc(r.due_at) if r.due_at is not None else None
            seconds = max((resolved - created).total_seconds(), 0.0)
            for (_name, unit), sums in zip(ESCALATION_TABLES, tiers, strict=True):
                key = (r.ruleset_id, _floor(resolved, unit))
                entry = sums.get(key)
                if entry is None:
                    entry = sums[key] = [0, 0, 0, 0.0, 0.0] + [0] * len(CYCLE_COLUMNS)
                entry[0] += 1
                if due is not None:
                    entry[1] += 1
                    entry[2] += int(resolved <= due)
                entry[3] += seconds
                entry[4] = max(entry[4], seconds)
                entry[5 + bisect.bisect_left(CYCLE_BUCKETS_S, seconds)] += 1
        for (name, _unit), sums in zip(ESCALATION_TABLES, tiers, strict=True):
            _upsert(connection, name, keys, columns, "seconds_max", sums)


def upgrade() -> None:
    """Applies this revision."""
    _create_tables()
    connection = op.get_bind()
    _backfill_decisions(connection)
    _backfill_escalations(connection)


def downgrade() -> None:
    """Reverts this revision (the minute decision rollups stay, as 0002 made them)."""
    op.drop_index("ix_escalations_status_ruleset_id_due_at", table_name="escalations")
    for name, _unit in ESCALATION_TABLES:
        op.drop_table(name)
    op.drop_table("decision_totals")
    op.drop_table("decision_rollups_daily")
    op.drop_table("decision_rollups_hourly")
