"""SQLAlchemy tables: typed declarative models for both SQLite and PostgreSQL.

Versions are immutable except for their lifecycle columns. A partial unique index makes
two active versions of one ruleset impossible at the database level, whatever the code
does. Tokens are stored only as SHA-256 hashes.

The decision log grows for years: on PostgreSQL ``decisions`` and ``escalations`` are
partitioned by month of the decision's ``evaluated_at`` (migration 0007,
``adapters.partitions``). Every key of a partitioned table must hold the partition key, so
their primary keys are (id, evaluated_at), the rows that hang off a decision carry its
``evaluated_at``, and idempotency keys live in a table of their own (``decision_keys``).
SQLite keeps one table of each, with the same keys, so one code path serves both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from rules_service.domain.figures import CYCLE_BUCKET_COUNT, LATENCY_BUCKET_COUNT

# Stable constraint names so Alembic migrations (and batch mode on SQLite) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps that always come back as aware UTC datetimes, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC so string order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RulesetRow(Base):
    """A ruleset: the name that versions hang from; its row is the lock for transitions."""

    __tablename__ = "rulesets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The pause in force (all three set) or none; and when the review reminder was told.
    paused_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    review_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class VersionRow(Base):
    """One immutable version of a ruleset; only the lifecycle columns ever change."""

    __tablename__ = "ruleset_versions"
    __table_args__ = (
        UniqueConstraint("ruleset_id", "number"),
        # At most one active version per ruleset, enforced by the database itself.
        Index("uq_one_active_version_per_ruleset", "ruleset_id", unique=True,
              sqlite_where=text("status = 'active'"),
              postgresql_where=text("status = 'active'")),
        Index("ix_ruleset_versions_status_effective_at", "status", "effective_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    author: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    ruleset: Mapped[RulesetRow] = relationship(lazy="joined")
    signoffs: Mapped[list[SignoffRow]] = relationship(
        back_populates="version", order_by="SignoffRow.id", lazy="selectin")


class SignoffRow(Base):
    """One role's sign-off (approve or reject) of one version."""

    __tablename__ = "signoffs"
    __table_args__ = (
        UniqueConstraint("version_id", "role"),
        # One person fills one role of a version.
        UniqueConstraint("version_id", "principal"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("ruleset_versions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(40))
    principal: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    version: Mapped[VersionRow] = relationship(back_populates="signoffs")


class AuditEventRow(Base):
    """One lifecycle transition: who, when, what, why."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_ruleset_id_id", "ruleset_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PrincipalRow(Base):
    """A person or automation that authenticates with tokens."""

    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_automation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Where notifications reach the person (``rules-service principals contact``).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # People sign in to the pages with a password (argon2 hash); automations never do.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Consecutive failed sign-ins, and until when the next attempt is refused (slow-down).
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sign_in_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(),
                                                                  nullable=True)

    tokens: Mapped[list[ApiTokenRow]] = relationship(back_populates="principal",
                                                     lazy="selectin")


class ApiTokenRow(Base):
    """A bearer token, stored only as the hex SHA-256 of the token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    principal: Mapped[PrincipalRow] = relationship(back_populates="tokens", lazy="joined")


class DecisionRow(Base):
    """A recorded decision: input, version, outcome, rules, caller, timing."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_ruleset_id_evaluated_at_id", "ruleset_id", "evaluated_at", "id"),
        Index("ix_decisions_evaluated_at_id", "evaluated_at", "id"),
        {"postgresql_partition_by": "RANGE (evaluated_at)"},
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    input: Mapped[dict[str, Any]] = mapped_column(JSONType)
    outcome: Mapped[str] = mapped_column(String(10))
    fired_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    deciding_rules: Mapped[list[str]] = mapped_column(JSONType)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    caller: Mapped[str] = mapped_column(String(200))
    # Shown with the decision; its uniqueness per caller is kept by ``decision_keys``.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The partition key, so part of the primary key (see the module docstring).
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    # Taken while the ruleset was paused: what its rules decided, and the pause's reason.
    paused_outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    ruleset: Mapped[RulesetRow] = relationship(lazy="joined")
    escalation: Mapped[EscalationRow | None] = relationship(
        back_populates="decision", lazy="joined", uselist=False,
        primaryjoin="and_(DecisionRow.id == foreign(EscalationRow.decision_id), "
                    "DecisionRow.evaluated_at == foreign(EscalationRow.decision_evaluated_at))")


class DecisionKeyRow(Base):
    """One caller's idempotency key and the decision that holds it.

    A table of its own, not partitioned: a unique constraint on a partitioned table must
    include the partition key, and a retry comes with a new ``evaluated_at``, so only a
    table keyed by (caller, key) alone keeps idempotency exact across partitions. It refers
    to its decision by (decision_id, evaluated_at) without a foreign key: PostgreSQL's check
    of a foreign key to a partitioned table costs the hot path more than the rest of the
    row (migration 0007 says how much); the write path inserts a key and its decision in
    one transaction and retention removes them together.
    """

    __tablename__ = "decision_keys"
    __table_args__ = (
        # Retention removes the keys of a period.
        Index("ix_decision_keys_evaluated_at_decision_id", "evaluated_at", "decision_id"),
    )

    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(36))
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EscalationRow(Base):
    """A decision that needs a person, due by the runbook's response-time target."""

    __tablename__ = "escalations"
    __table_args__ = (
        # One escalation per decision (the decision's key includes its evaluated_at). Its
        # decision is referred to without a foreign key, as in ``DecisionKeyRow``; both
        # live in partitions of the same month and retention removes them together.
        UniqueConstraint("decision_id", "decision_evaluated_at"),
        Index("ix_escalations_status_due_at", "status", "due_at"),
        Index("ix_escalations_ruleset_id_status", "ruleset_id", "status"),
        # Covers the open and overdue counts per ruleset: they read the open entries
        # only (status first), already grouped by ruleset, without touching the table.
        Index("ix_escalations_status_ruleset_id_due_at", "status", "ruleset_id", "due_at"),
        # The dashboard's breach count: only escalations that passed their target.
        Index("ix_escalations_breached_due_at", "due_at", "ruleset_id",
              sqlite_where=text("breached_at IS NOT NULL"),
              postgresql_where=text("breached_at IS NOT NULL")),
        {"postgresql_partition_by": "RANGE (decision_evaluated_at)"},
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(36))
    # The decision's evaluated_at: the partition key, shared with ``decisions`` so an
    # escalation lives in the partition of the same month as its decision.
    decision_evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    to_role: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="open")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(10), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    # The walk along the runbook's escalation path (``services.escalation_timers``): when
    # it was first found overdue, how many steps were taken, and when the next one is due.
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    steps_taken: Mapped[int] = mapped_column(Integer, default=0)
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    decision: Mapped[DecisionRow] = relationship(
        back_populates="escalation",
        primaryjoin="and_(DecisionRow.id == foreign(EscalationRow.decision_id), "
                    "DecisionRow.evaluated_at == foreign(EscalationRow.decision_evaluated_at))")
    ruleset: Mapped[RulesetRow] = relationship(lazy="joined")


class LiveGenerationRow(Base):
    """One counter, bumped in the same transaction as every change to what processes keep
    in memory (active and scheduled versions, principals and tokens). Each process polls
    it and reloads when it moves; see ``services.live``."""

    __tablename__ = "live_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


HISTOGRAM_COLUMNS: tuple[str, ...] = tuple(f"latency_bucket_{i:02d}"
                                           for i in range(LATENCY_BUCKET_COUNT))
"""Columns of the decision rollups counting decisions per latency bucket
(``domain.figures.LATENCY_BUCKETS_MS``)."""

CYCLE_COLUMNS: tuple[str, ...] = tuple(f"cycle_bucket_{i:02d}"
                                       for i in range(CYCLE_BUCKET_COUNT))
"""Columns of ``escalation_rollups`` counting resolutions per cycle-time bucket
(``domain.figures.CYCLE_BUCKETS_S``)."""


def _decision_figures() -> list[Column[Any]]:
    return [Column("count", BigInteger, nullable=False),
            Column("duration_sum", Float, nullable=False),
            Column("duration_max", Float, nullable=False),
            *(Column(name, BigInteger, nullable=False) for name in HISTOGRAM_COLUMNS)]


def _decision_rollup_table(name: str) -> Table:
    return Table(
        name, Base.metadata,
        Column("ruleset_id", Integer, ForeignKey("rulesets.id", ondelete="CASCADE"),
               primary_key=True),
        Column("bucket_start", UTCDateTime(), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("outcome", String(10), primary_key=True),
        Column("fallback", Boolean, primary_key=True),
        *_decision_figures(),
        Index(f"ix_{name}_bucket_start", "bucket_start"),
    )


decision_rollups = _decision_rollup_table("decision_rollups")
"""Decisions counted per ruleset, minute, version, outcome and fallback, with a latency
histogram (``HISTOGRAM_COLUMNS``). Added to by the fold (``adapters.rollup_fold``), which
counts each recorded decision exactly once, a moment after it commits, so the figures
cost O(buckets). Only ever used through SQLAlchemy Core, so it is a Table, not a mapped class."""

decision_rollups_hourly = _decision_rollup_table("decision_rollups_hourly")
"""The same counts per UTC hour, written alongside the minutes."""

decision_rollups_daily = _decision_rollup_table("decision_rollups_daily")
"""The same counts per UTC day, written alongside the minutes: a 30-day window reads its
whole days here, and only its ragged ends from the hours and minutes."""

decision_totals = Table(
    "decision_totals", Base.metadata,
    Column("ruleset_id", Integer, ForeignKey("rulesets.id", ondelete="CASCADE"),
           primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("outcome", String(10), primary_key=True),
    Column("fallback", Boolean, primary_key=True),
    *_decision_figures(),
)
"""All-time counts per ruleset, version, outcome and fallback, with the latency histogram:
what the counters and the histogram of /metrics expose, in a few rows whatever the age
of the service."""

rollup_pending = Table(
    "rollup_pending", Base.metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("decision_id", String(36), nullable=False),
    Column("ruleset_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("evaluated_at", UTCDateTime(), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("fallback", Boolean, nullable=False),
    Column("duration_ms", Float, nullable=False),
)
"""One row per recorded decision not yet counted in the rollups, inserted in the
decision's own transaction (insert-only: nothing shared between writers); the fold
(``adapters.rollup_fold``) deletes it in the transaction that adds it to the rollups."""


def _escalation_rollup_table(name: str) -> Table:
    return Table(
        name, Base.metadata,
        Column("ruleset_id", Integer, ForeignKey("rulesets.id", ondelete="CASCADE"),
               primary_key=True),
        Column("bucket_start", UTCDateTime(), primary_key=True),
        Column("resolved", BigInteger, nullable=False),
        Column("resolved_with_target", BigInteger, nullable=False),
        Column("resolved_within_target", BigInteger, nullable=False),
        Column("seconds_sum", Float, nullable=False),
        Column("seconds_max", Float, nullable=False),
        *(Column(column, BigInteger, nullable=False) for column in CYCLE_COLUMNS),
        Index(f"ix_{name}_bucket_start", "bucket_start"),
    )


escalation_rollups = _escalation_rollup_table("escalation_rollups")
"""Escalations resolved per ruleset and minute of resolution: how many, how many had a
due time and met it, and the resolution time (``resolved_at - created_at``) as a sum, a
maximum and a histogram (``CYCLE_COLUMNS``). Written in ``resolve_escalation``'s
transaction (``adapters.rollups.add_resolutions``)."""

escalation_rollups_hourly = _escalation_rollup_table("escalation_rollups_hourly")
"""The same per UTC hour of resolution."""

escalation_rollups_daily = _escalation_rollup_table("escalation_rollups_daily")
"""The same per UTC day of resolution."""


class OutboxEventRow(Base):
    """An event worth telling, written in the transaction of the change that caused it.

    The worker fans each one out to deliveries (``dispatched_at`` set when done); the
    webhook body is built from these columns, so every retry sends the same bytes.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_dispatched_at_occurred_at", "dispatched_at",
                            "occurred_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    ruleset_id: Mapped[int | None] = mapped_column(
        ForeignKey("rulesets.id", ondelete="CASCADE"), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SubscriptionRow(Base):
    """Who wants which events: a webhook URL (with its signing secret) or a mailto: address,
    for one ruleset or all (``ruleset`` NULL)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType)
    ruleset: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryRow(Base):
    """One event to one target: queued, delivered, failed (to be retried) or dead."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_deliveries_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"),
                                          index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[str | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL"), nullable=True, index=True)
    recipient: Mapped[str | None] = mapped_column(String(200), nullable=True)
    target: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EscalationStepRow(Base):
    """One step of an overdue escalation's walk along the runbook's path."""

    __tablename__ = "escalation_steps"
    __table_args__ = (
        UniqueConstraint("escalation_id", "step"),
        ForeignKeyConstraint(["escalation_id", "decision_evaluated_at"],
                             ["escalations.id", "escalations.decision_evaluated_at"],
                             name="fk_escalation_steps_escalation_id_escalations",
                             ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    escalation_id: Mapped[str] = mapped_column(String(36))
    # The escalation's partition key, so the step can refer to it (see the module docstring).
    decision_evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    step: Mapped[int] = mapped_column(Integer)
    principal: Mapped[str | None] = mapped_column(String(200), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Passed over by a late walk: recorded, nobody paged.
    skipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WorkerHeartbeatRow(Base):
    """One notification worker process: when it last finished a pass, and its totals since
    it started (``worker`` is ``host:pid``)."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    passes: Mapped[int] = mapped_column(BigInteger)
    escalation_steps: Mapped[int] = mapped_column(BigInteger)
    events_dispatched: Mapped[int] = mapped_column(BigInteger)
    delivered: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    dead: Mapped[int] = mapped_column(BigInteger)
    last_pass_ms: Mapped[float] = mapped_column(Float)


class SignInThrottleRow(Base):
    """Sign-in attempts in a row that did not succeed, per name and client address.

    Any name is kept, known or not; rows untouched for a day are pruned."""

    __tablename__ = "sign_in_throttles"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WeeklyReportRow(Base):
    """A week whose scheduled report went out (the week's Monday): written in the same
    transaction as the report's events, so each week's report is sent once, whatever the
    number of workers or their restarts."""

    __tablename__ = "weekly_reports"

    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rulesets: Mapped[int] = mapped_column(Integer)


class ShadowRow(Base):
    """One start of a version in shadow: its sample, its threshold, how far its runner has
    read the decision log (``scanned_until``), and when and why it ended."""

    __tablename__ = "shadows"
    __table_args__ = (Index("ix_shadows_ruleset_id_version", "ruleset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    sample: Mapped[float] = mapped_column(Float)
    alert_above: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_by: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    scanned_until: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True,
                                                      index=True)
    ended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ShadowResultRow(Base):
    """What a version in shadow decided for one recorded decision (``state`` decided or
    refused), or that the decision was shed under overload (``shed``). The primary key
    makes each (shadow, decision) counted once, however often a runner retries."""

    __tablename__ = "shadow_results"
    __table_args__ = (Index("ix_shadow_results_shadow_id_state_evaluated_at",
                            "shadow_id", "state", "evaluated_at"),)

    shadow_id: Mapped[int] = mapped_column(ForeignKey("shadows.id", ondelete="CASCADE"),
                                           primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(10))
    active_outcome: Mapped[str] = mapped_column(String(10))
    shadow_outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)


class SealRow(Base):
    """One seal of the decision log and the audit trail (``domain.seals.Seal``): the
    Merkle root of its items, chained to the previous seal by its hash."""

    __tablename__ = "seals"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    previous_hash: Mapped[str] = mapped_column(String(64))
    root: Mapped[str] = mapped_column(String(64))
    items: Mapped[int] = mapped_column(Integer)
    # Items recorded before this moment were sealed (later ones wait for the next seal).
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime())
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class SealItemRow(Base):
    """One decision or audit event as its seal recorded it: the content hash, the leaf's
    place in the seal's Merkle tree, and the item's recorded time. An item is sealed once
    (the primary key), so two sealers can never seal it twice."""

    __tablename__ = "seal_items"
    __table_args__ = (
        UniqueConstraint("seal", "position"),
        # The retention names the seals covering a month from its decisions' times.
        Index("ix_seal_items_kind_recorded_at", "kind", "recorded_at"),
    )

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seal: Mapped[int] = mapped_column(ForeignKey("seals.number"))
    position: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    hash: Mapped[str] = mapped_column(String(64))
