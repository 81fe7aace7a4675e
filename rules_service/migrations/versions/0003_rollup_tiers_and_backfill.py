"""Hourly and all-time decision rollups, escalation rollups, an open-escalations index;
backfills every rollup from the decisions and escalations already recorded.

The backfill reads the decisions once, in (evaluated_at, id) order through that index,
in chunks, and writes a minute (or an hour) as soon as the chunks have moved past it, so
memory holds one chunk and the buckets still open, however many rows there are. It
counts exactly as ``rules_service.adapters.rollups`` does (same buckets, same histogram
bounds, frozen here so this revision never changes meaning); a test compares the two.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

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


def _decision_figures() -> list[sa.Column[Any]]:
    return [sa.Column("count", sa.BigInteger(), nullable=False),
            sa.Column("duration_sum", sa.Float(), nullable=False),
            sa.Column("duration_max", sa.Float(), nullable=False),
            *(sa.Column(name, sa.BigInteger(), nullable=False) for name in HISTOGRAM_COLUMNS)]


def _ruleset_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["ruleset_id"], ["rulesets.id"],
                                   name=f"fk_{table}_ruleset_id_rulesets", ondelete="CASCADE")


def _create_tables() -> None:
    op.create_table(
        "decision_rollups_hourly",
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        *_decision_figures(),
        _ruleset_fk("decision_rollups_hourly"),
        sa.PrimaryKeyConstraint("ruleset_id", "bucket_start", "version", "outcome",
                                "fallback", name="pk_decision_rollups_hourly"),
    )
    op.create_index("ix_decision_rollups_hourly_bucket_start", "decision_rollups_hourly",
                    ["bucket_start"], unique=False)
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
    op.create_table(
        "escalation_rollups",
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved", sa.BigInteger(), nullable=False),
        sa.Column("resolved_with_target", sa.BigInteger(), nullable=False),
        sa.Column("resolved_within_target", sa.BigInteger(), nullable=False),
        sa.Column("seconds_sum", sa.Float(), nullable=False),
        sa.Column("seconds_max", sa.Float(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in CYCLE_COLUMNS),
        _ruleset_fk("escalation_rollups"),
        sa.PrimaryKeyConstraint("ruleset_id", "bucket_start", name="pk_escalation_rollups"),
    )
    op.create_index("ix_escalation_rollups_bucket_start", "escalation_rollups",
                    ["bucket_start"], unique=False)
    op.create_index("ix_escalations_open_ruleset_id_due_at", "escalations",
                    ["ruleset_id", "due_at"], unique=False,
                    sqlite_where=sa.text("status = 'open'"),
                    postgresql_where=sa.text("status = 'open'"))


# --------------------------------------------------------------------------- backfill


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Writer:
    """Inserts finished buckets of one rollup table (naive UTC on SQLite, as the app)."""

    def __init__(self, connection: sa.Connection, table: sa.TableClause,
                 keys: tuple[str, ...], columns: tuple[str, ...]) -> None:
        self.connection, self.table, self.keys, self.columns = connection, table, keys, columns
        self.naive = connection.dialect.name == "sqlite"

    def write(self, sums: dict[tuple[Any, ...], list[Any]]) -> None:
        rows = []
        for key in sorted(sums):
            row = dict(zip(self.keys, key, strict=True))
            if "bucket_start" in row and self.naive:
                row["bucket_start"] = row["bucket_start"].replace(tzinfo=None)
            row.update(zip(self.columns, sums[key], strict=True))
            rows.append(row)
        for start in range(0, len(rows), CHUNK):
            self.connection.execute(sa.insert(self.table), rows[start:start + CHUNK])


def _rollup_table(name: str, keys: tuple[str, ...], columns: tuple[str, ...]
                  ) -> sa.TableClause:
    types: dict[str, Any] = {"bucket_start": sa.DateTime(timezone=True),
                             "fallback": sa.Boolean()}
    return sa.table(name, *(sa.column(c, types.get(c)) for c in keys + columns))


def _decision_chunks(connection: sa.Connection) -> Iterator[Sequence[Any]]:
    d = sa.table("decisions", sa.column("id", sa.String()), sa.column("ruleset_id"),
                 sa.column("version"), sa.column("outcome"),
                 sa.column("fallback", sa.Boolean()),
                 sa.column("evaluated_at", sa.DateTime(timezone=True)),
                 sa.column("duration_ms", sa.Float()))
    stmt = (sa.select(d.c.id, d.c.ruleset_id, d.c.version, d.c.outcome, d.c.fallback,
                      d.c.evaluated_at, d.c.duration_ms)
            .order_by(d.c.evaluated_at, d.c.id).limit(CHUNK))
    last: tuple[datetime, str] | None = None
    while True:
        # A row-value comparison, so both databases seek the (evaluated_at, id) index.
        page = stmt if last is None else stmt.where(
            sa.tuple_(d.c.evaluated_at, d.c.id) > sa.tuple_(
                sa.literal(last[0], sa.DateTime(timezone=True)), sa.literal(last[1])))
        rows = connection.execute(page).all()
        if not rows:
            return
        yield rows
        last = (rows[-1].evaluated_at, rows[-1].id)


def _add_decision(sums: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...],
                  ms: float) -> None:
    entry = sums.get(key)
    if entry is None:
        entry = sums[key] = [0, 0.0, 0.0] + [0] * len(HISTOGRAM_COLUMNS)
    entry[0] += 1
    entry[1] += ms
    entry[2] = max(entry[2], ms)
    entry[3 + bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1


def _flush_before(sums: dict[tuple[Any, ...], list[Any]], writer: _Writer,
                  before: datetime | None) -> None:
    done = {k: v for k, v in sums.items() if before is None or k[1] < before}
    writer.write(done)
    for key in done:
        del sums[key]


def _backfill_decisions(connection: sa.Connection) -> None:
    keys = ("ruleset_id", "bucket_start", "version", "outcome", "fallback")
    columns = ("count", "duration_sum", "duration_max", *HISTOGRAM_COLUMNS)
    minutes_writer = _Writer(connection, _rollup_table("decision_rollups", keys, columns),
                             keys, columns)
    hours_writer = _Writer(connection, _rollup_table("decision_rollups_hourly", keys,
                                                     columns), keys, columns)
    totals_keys = ("ruleset_id", "version", "outcome", "fallback")
    totals_writer = _Writer(connection, _rollup_table("decision_totals", totals_keys,
                                                      columns), totals_keys, columns)
    # Rebuilt from scratch, so the result is exact whatever was counted before.
    connection.execute(sa.text("DELETE FROM decision_rollups"))
    minutes: dict[tuple[Any, ...], list[Any]] = {}
    hours: dict[tuple[Any, ...], list[Any]] = {}
    totals: dict[tuple[Any, ...], list[Any]] = {}
    for rows in _decision_chunks(connection):
        for r in rows:
            minute = _utc(r.evaluated_at).replace(second=0, microsecond=0)
            kind = (r.version, r.outcome, bool(r.fallback))
            ms = float(r.duration_ms)
            _add_decision(minutes, (r.ruleset_id, minute, *kind), ms)
            _add_decision(hours, (r.ruleset_id, minute.replace(minute=0), *kind), ms)
            _add_decision(totals, (r.ruleset_id, *kind), ms)
        # Rows come in time order: the buckets before the chunk's last one are complete.
        last = _utc(rows[-1].evaluated_at).replace(second=0, microsecond=0)
        _flush_before(minutes, minutes_writer, last)
        _flush_before(hours, hours_writer, last.replace(minute=0))
    _flush_before(minutes, minutes_writer, None)
    _flush_before(hours, hours_writer, None)
    totals_writer.write(totals)


def _backfill_escalations(connection: sa.Connection) -> None:
    e = sa.table("escalations", sa.column("id", sa.String()), sa.column("ruleset_id"),
                 sa.column("status"), sa.column("created_at", sa.DateTime(timezone=True)),
                 sa.column("resolved_at", sa.DateTime(timezone=True)),
                 sa.column("due_at", sa.DateTime(timezone=True)))
    keys = ("ruleset_id", "bucket_start")
    columns = ("resolved", "resolved_with_target", "resolved_within_target", "seconds_sum",
               "seconds_max", *CYCLE_COLUMNS)
    writer = _Writer(connection, _rollup_table("escalation_rollups", keys, columns), keys,
                     columns)
    # Resolutions are made by people: their minutes are few enough to hold at once.
    sums: dict[tuple[Any, ...], list[Any]] = {}
    stmt = (sa.select(e.c.ruleset_id, e.c.created_at, e.c.resolved_at, e.c.due_at)
            .where(e.c.status == "resolved", e.c.resolved_at.is_not(None)))
    # Streamed (on the statement: options set on the connection would stay on it).
    for r in connection.execute(stmt.execution_options(yield_per=CHUNK)):
        created, resolved = _utc(r.created_at), _utc(r.resolved_at)
        due = _utc(r.due_at) if r.due_at is not None else None
        key = (r.ruleset_id, resolved.replace(second=0, microsecond=0))
        entry = sums.get(key)
        if entry is None:
            entry = sums[key] = [0, 0, 0, 0.0, 0.0] + [0] * len(CYCLE_COLUMNS)
        seconds = max((resolved - created).total_seconds(), 0.0)
        entry[0] += 1
        if due is not None:
            entry[1] += 1
            entry[2] += int(resolved <= due)
        entry[3] += seconds
        entry[4] = max(entry[4], seconds)
        entry[5 + bisect.bisect_left(CYCLE_BUCKETS_S, seconds)] += 1
    writer.write(sums)


def upgrade() -> None:
    """Applies this revision."""
    _create_tables()
    connection = op.get_bind()
    _backfill_decisions(connection)
    _backfill_escalations(connection)


def downgrade() -> None:
    """Reverts this revision (the minute rollups stay, as 0002 made them)."""
    op.drop_index("ix_escalations_open_ruleset_id_due_at", table_name="escalations")
    op.drop_table("escalation_rollups")
    op.drop_table("decision_totals")
    op.drop_table("decision_rollups_hourly")
