"""A decision log that grows for years: decisions and escalations partitioned by month.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:00:00

On PostgreSQL ``decisions`` becomes a table partitioned by ``RANGE (evaluated_at)`` and
``escalations`` one partitioned by ``RANGE (decision_evaluated_at)`` (the evaluated_at of
its decision), with one partition per calendar month (UTC) named ``decisions_pYYYY_MM`` /
``escalations_pYYYY_MM``, and a ``DEFAULT`` partition each so an insert never fails for lack
of a partition. ``rules-service db partitions`` creates the months ahead and moves any row
found in a default partition into its month; ``rules-service db retention`` archives whole
months and drops them (``adapters.partitions``, ``services.retention``).

Why partition by ``evaluated_at`` and not by the uuid7 ``id``: ids are public (never
rewritten), older rows and tests hold ids whose time is not the decision's time (uuid4, a
moved clock), and the listing filters, orders and pages by ``evaluated_at``. Partitioning by
it makes the ``since``/``until``/cursor bounds prune partitions, and makes "older than N
days" mean exactly that. What it costs, and the design for each key:

(a) Primary key. Every unique constraint of a partitioned table must include the partition
    key, so the key of a decision is ``(id, evaluated_at)`` and of an escalation ``(id,
    decision_evaluated_at)``. Ids are uuid7 (random bits below the millisecond), so ``id``
    alone stays unique in practice; the database no longer proves it across partitions.
    Reading one decision by id probes the primary-key index of each partition (one
    descent each), off the hot path.
(b) Idempotency. ``(caller, idempotency_key)`` unique on ``decisions`` would have to include
    ``evaluated_at``, and a retry has a new ``evaluated_at``, so it would no longer be exact.
    The keys move to ``decision_keys`` (caller, idempotency_key) -> (decision_id,
    evaluated_at), not partitioned. The hot path stays one statement per table:
    ``INSERT INTO decision_keys ... ON CONFLICT DO NOTHING RETURNING decision_id`` decides
    which keyed decisions are new, then one plain ``INSERT INTO decisions``.
    ``decisions.idempotency_key`` stays, for display.
(c) References to decisions. ``escalations`` gets ``decision_evaluated_at`` and is
    partitioned by it, so an escalation always lives in the same month as its decision and
    a month of both is dropped together; ``uq_escalations_decision_id`` becomes unique
    (decision_id, decision_evaluated_at), still one escalation per decision.
    ``escalation_steps`` gets ``decision_evaluated_at`` too and keeps its foreign key to
    ``escalations (id, decision_evaluated_at)`` (steps are rare, written by the worker).
    ``decision_keys`` and ``escalations`` refer to their decision by (id, evaluated_at)
    *without* a foreign key: on PostgreSQL 15 the check of a foreign key to a partitioned
    table (its plan locks every partition) cost the evaluate path about 100 us of server
    CPU per escalation and 30 us per key; measured with ``bench/write_path.py`` (8
    decisions per transaction, all keyed, a fifth escalating), server CPU per transaction
    was 987 us before this revision, 1,450 us with both foreign keys, 1,033 us without.
    The rows are written together by ``adapters.decision_log.write_decisions`` in one
    transaction and removed together by retention (``services.retention``). Fired rules
    are a JSON column of the decision and the outbox keeps ids in its JSON payload (no
    foreign keys), so nothing else refers to a decision.

SQLite keeps one table of each (no partitions) but gets the same columns and keys, so the
ORM and the write path are one for both databases; its retention deletes rows in batches.

Upgrade converts a populated database: the old tables are renamed away, the new ones are
created (on PostgreSQL with a partition for every month from the oldest decision to three
months ahead, plus the defaults), every row is copied, the indexes are built after the
copy, and the old tables are dropped. Downgrade does the reverse into the 0006 shape (the
idempotency keys go back into a unique constraint of ``decisions``). Both run in the
migration's transaction: a failure leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BREACHED = sa.text("breached_at IS NOT NULL")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONTHS_AHEAD = 3
MAX_MONTHS_BACK = 240
"""Months older than this (a stray timestamp) are left to the default partition; the
maintenance command moves them into partitions of their own."""

DECISION_COLUMNS = ("id", "ruleset_id", "version", "input", "outcome", "fired_rules",
                    "deciding_rules", "fallback", "fallback_reason", "caller",
                    "idempotency_key", "request_hash", "evaluated_at", "duration_ms")
ESCALATION_COLUMNS = ("id", "decision_id", "ruleset_id", "version", "to_role", "status",
                      "due_at", "created_at", "resolved_at", "resolved_by", "resolution",
                      "comment", "breached_at", "steps_taken", "next_step_at")

OLD_INDEXES = {
    "decisions": ("ix_decisions_evaluated_at_id", "ix_decisions_ruleset_id_evaluated_at_id"),
    "escalations": ("ix_escalations_ruleset_id_status", "ix_escalations_status_due_at",
                    "ix_escalations_status_ruleset_id_due_at",
                    "ix_escalations_breached_due_at"),
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


# --------------------------------------------------------------------------- tables


def _decision_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("input", JSON_TYPE, nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("fired_rules", JSON_TYPE, nullable=False),
        sa.Column("deciding_rules", JSON_TYPE, nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("fallback_reason", sa.Text(), nullable=True),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
    ]


def _escalation_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("to_role", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution", sa.String(length=10), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("steps_taken", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _ruleset_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["ruleset_id"], ["rulesets.id"],
                                   name=f"fk_{table}_ruleset_id_rulesets", ondelete="CASCADE")


def _escalation_indexes() -> None:
    op.create_index("ix_escalations_ruleset_id_status", "escalations",
                    ["ruleset_id", "status"], unique=False)
    op.create_index("ix_escalations_status_due_at", "escalations", ["status", "due_at"],
                    unique=False)
    op.create_index("ix_escalations_status_ruleset_id_due_at", "escalations",
                    ["status", "ruleset_id", "due_at"], unique=False)
    op.create_index("ix_escalations_breached_due_at", "escalations", ["due_at", "ruleset_id"],
                    unique=False, sqlite_where=BREACHED, postgresql_where=BREACHED)


def _decision_indexes() -> None:
    op.create_index("ix_decisions_evaluated_at_id", "decisions", ["evaluated_at", "id"],
                    unique=False)
    op.create_index("ix_decisions_ruleset_id_evaluated_at_id", "decisions",
                    ["ruleset_id", "evaluated_at", "id"], unique=False)


def _rename_away(table: str, suffix: str, constraints: Sequence[str]) -> None:
    """Renames a table (and, on PostgreSQL, its index-backed constraints, whose names are
    index names and so must be free for the new table) out of the way."""
    op.rename_table(table, f"{table}_{suffix}")
    if _postgres():
        for name in constraints:
            op.execute(f"ALTER TABLE {table}_{suffix} RENAME CONSTRAINT {name} "
                       f"TO {name}_{suffix}")


def _copy(target: str, source: str, columns: Sequence[str], extra: str = "",
          select: Sequence[str] | None = None) -> None:
    names = ", ".join(columns)
    chosen = ", ".join(select or [f"s.{c}" for c in columns])
    op.execute(f"INSERT INTO {target} ({names}) "  # noqa: S608 - our own names
               f"SELECT {chosen} FROM {source} s {extra}")


# --------------------------------------------------------------------------- partitions


def _month(at: datetime) -> tuple[int, int]:
    return at.year, at.month


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _months(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    out = [first]
    while out[-1] < last:
        out.append(_next(*out[-1]))
    return out


def _create_partitions(table: str, months: Sequence[tuple[int, int]]) -> None:
    """A partition per month and the default one (the same DDL ``adapters.partitions``
    issues later; repeated here so this revision never changes meaning)."""
    for year, month in months:
        ny, nm = _next(year, month)
        op.execute(f"CREATE TABLE {table}_p{year:04d}_{month:02d} PARTITION OF {table} "
                   f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
                   f"TO ('{ny:04d}-{nm:02d}-01 00:00:00+00')")
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def _months_to_create() -> list[tuple[int, int]]:
    oldest = op.get_bind().execute(sa.text("SELECT min(evaluated_at) FROM decisions_old")
                                   ).scalar()
    now = _month(datetime.now(UTC))
    last = now
    for _ in range(MONTHS_AHEAD):
        last = _next(*last)
    first = now if oldest is None else min(now, _month(oldest))
    floor = now
    for _ in range(MAX_MONTHS_BACK):
        floor = (floor[0] - 1, 12) if floor[1] == 1 else (floor[0], floor[1] - 1)
    return _months(max(first, floor), last)


# --------------------------------------------------------------------------- upgrade


def upgrade() -> None:
    """Applies this revision."""
    postgres = _postgres()
    for table, names in OLD_INDEXES.items():
        for name in names:
            op.drop_index(name, table_name=table)
    _rename_away("escalations", "old", ("pk_escalations", "uq_escalations_decision_id"))
    _rename_away("decisions", "old", ("pk_decisions", "uq_decisions_caller_idempotency_key"))
    partitioned: dict[str, Any] = (
        {"postgresql_partition_by": "RANGE (evaluated_at)"} if postgres else {})
    op.create_table(
        "decisions", *_decision_columns(), _ruleset_fk("decisions"),
        sa.PrimaryKeyConstraint("id", "evaluated_at", name="pk_decisions"),
        **partitioned)
    months = _months_to_create() if postgres else []
    if postgres:
        _create_partitions("decisions", months)
    _copy("decisions", "decisions_old", DECISION_COLUMNS)
    _decision_indexes()

    op.create_table(
        "decision_keys",
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "idempotency_key", name="pk_decision_keys"),
    )
    _copy("decision_keys", "decisions_old", ("caller", "idempotency_key", "decision_id",
                                             "evaluated_at"),
          "WHERE s.idempotency_key IS NOT NULL",
          ["s.caller", "s.idempotency_key", "s.id", "s.evaluated_at"])
    op.create_index("ix_decision_keys_evaluated_at_decision_id", "decision_keys",
                    ["evaluated_at", "decision_id"], unique=False)

    partitioned = ({"postgresql_partition_by": "RANGE (decision_evaluated_at)"}
                   if postgres else {})
    op.create_table(
        "escalations", *_escalation_columns(),
        sa.Column("decision_evaluated_at", sa.DateTime(timezone=True), nullable=False),
        _ruleset_fk("escalations"),
        sa.PrimaryKeyConstraint("id", "decision_evaluated_at", name="pk_escalations"),
        sa.UniqueConstraint("decision_id", "decision_evaluated_at",
                            name="uq_escalations_decision_id_decision_evaluated_at"),
        **partitioned)
    if postgres:
        _create_partitions("escalations", months)
    _copy("escalations", "escalations_old", (*ESCALATION_COLUMNS, "decision_evaluated_at"),
          "JOIN decisions_old d ON d.id = s.decision_id",
          [*(f"s.{c}" for c in ESCALATION_COLUMNS), "d.evaluated_at"])
    _escalation_indexes()

    with op.batch_alter_table("escalation_steps") as batch:
        batch.add_column(sa.Column("decision_evaluated_at", sa.DateTime(timezone=True),
                                   nullable=True))
    op.execute("UPDATE escalation_steps SET decision_evaluated_at = ("
               "SELECT e.decision_evaluated_at FROM escalations e "
               "WHERE e.id = escalation_steps.escalation_id)")
    with op.batch_alter_table("escalation_steps") as batch:
        batch.drop_constraint("fk_escalation_steps_escalation_id_escalations",
                              type_="foreignkey")
        batch.alter_column("decision_evaluated_at", existing_type=sa.DateTime(timezone=True),
                           nullable=False)
        batch.create_foreign_key("fk_escalation_steps_escalation_id_escalations",
                                 "escalations", ["escalation_id", "decision_evaluated_at"],
                                 ["id", "decision_evaluated_at"], ondelete="CASCADE")
    # Children first: nothing refers to an old table when it is dropped, so no cascade.
    op.drop_table("escalations_old")
    op.drop_table("decisions_old")


# --------------------------------------------------------------------------- downgrade


def downgrade() -> None:
    """Reverts this revision: one table each, keys back in ``decisions``."""
    for table, names in OLD_INDEXES.items():
        for name in names:
            op.drop_index(name, table_name=table)
    op.drop_index("ix_decision_keys_evaluated_at_decision_id", table_name="decision_keys")
    with op.batch_alter_table("escalation_steps") as batch:
        batch.drop_constraint("fk_escalation_steps_escalation_id_escalations",
                              type_="foreignkey")
    _rename_away("escalations", "new", ("pk_escalations",
                                        "uq_escalations_decision_id_decision_evaluated_at"))
    _rename_away("decisions", "new", ("pk_decisions",))
    op.create_table(
        "decisions", *_decision_columns(), _ruleset_fk("decisions"),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.UniqueConstraint("caller", "idempotency_key",
                            name="uq_decisions_caller_idempotency_key"))
    _copy("decisions", "decisions_new", DECISION_COLUMNS)
    _decision_indexes()
    op.create_table(
        "escalations", *_escalation_columns(),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"],
                                name="fk_escalations_decision_id_decisions",
                                ondelete="CASCADE"),
        _ruleset_fk("escalations"),
        sa.PrimaryKeyConstraint("id", name="pk_escalations"),
        sa.UniqueConstraint("decision_id", name="uq_escalations_decision_id"))
    _copy("escalations", "escalations_new", ESCALATION_COLUMNS)
    _escalation_indexes()
    with op.batch_alter_table("escalation_steps") as batch:
        batch.drop_column("decision_evaluated_at")
        batch.create_foreign_key("fk_escalation_steps_escalation_id_escalations",
                                 "escalations", ["escalation_id"], ["id"], ondelete="CASCADE")
    op.drop_table("decision_keys")
    op.drop_table("escalations_new")
    op.drop_table("decisions_new")
