"""What the retention of the decision log reads and removes, in SQL (``services.retention``
decides what to do with each month and writes the archives).

It reads one month at a time: its counts, and each decision as its archive line (with its
escalation and that escalation's steps) from one snapshot. It removes a month only after
checking, in the removing transaction, that it still holds what was archived: on
PostgreSQL its partitions of ``decisions`` and ``escalations`` are detached and dropped
(``adapters.partitions``); on SQLite its decisions are deleted in batches, each batch
with their keys and escalations (whose steps go by the foreign key's cascade).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, delete, func, select, text

from rules_service.adapters import partitions
from rules_service.adapters.database import READONLY_OPTION
from rules_service.adapters.orm import (
    DecisionKeyRow,
    DecisionRow,
    DeliveryRow,
    EscalationRow,
    EscalationStepRow,
    OutboxEventRow,
    RulesetRow,
)
from rules_service.adapters.partitions import Month

Database = Engine
"""What the retention runs on: the service's database engine."""

DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
ESCALATIONS: Table = EscalationRow.__table__  # type: ignore[assignment]
KEYS: Table = DecisionKeyRow.__table__  # type: ignore[assignment]
STEPS: Table = EscalationStepRow.__table__  # type: ignore[assignment]
RULESETS: Table = RulesetRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxEventRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[assignment]
SETTLED = ("delivered", "dead")

DELETE_BATCH = 5000
"""Decisions deleted per transaction on SQLite, so writers wait at most one batch."""

Counts = tuple[int, int, int]
"""(decisions, escalations, open escalations) of a month."""


@dataclass
class Survey:
    """The months that ended before a cutoff and may hold decisions (oldest first), their
    counts, and the decisions older than the cutoff left in a default partition."""

    months: list[Month]
    counts: dict[Month, Counts]
    old_rows_in_default: int


def _in(column: Any, month: Month) -> Any:
    return and_(column >= month.start, column < month.end)


def _counts(conn: Connection, month: Month) -> Counts:
    decisions = conn.execute(select(func.count()).select_from(DECISIONS).where(
        _in(DECISIONS.c.evaluated_at, month))).scalar_one()
    escalations, still_open = conn.execute(select(
        func.count(), func.count().filter(ESCALATIONS.c.status == "open")).where(
        _in(ESCALATIONS.c.decision_evaluated_at, month))).one()
    return int(decisions), int(escalations), int(still_open or 0)


def _months(conn: Connection, cutoff: datetime) -> list[Month]:
    if partitions.is_partitioned(conn):
        return [m for m in partitions.existing_months(conn) if m.end <= cutoff]
    oldest = conn.execute(select(func.min(DECISIONS.c.evaluated_at))).scalar()
    if oldest is None:
        return []
    last = Month.of(cutoff).previous()
    return partitions.months_between(Month.of(oldest), last) if Month.of(oldest) <= last else []


def _lines(conn: Connection, month: Month) -> Iterator[dict[str, Any]]:
    """Each decision of the month as its archive line, in (evaluated_at, id) order; times
    are datetimes."""
    names = dict(conn.execute(select(RULESETS.c.id, RULESETS.c.name)).all())
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in conn.execute(select(STEPS).where(_in(STEPS.c.decision_evaluated_at, month))
                             .order_by(STEPS.c.escalation_id, STEPS.c.step)).mappings():
        steps.setdefault(step["escalation_id"], []).append(
            {"step": step["step"], "principal": step["principal"], "at": step["at"]})
    e = ESCALATIONS
    query = (select(DECISIONS, *(c.label(f"escalation_{c.name}") for c in e.c))
             .select_from(DECISIONS.outerjoin(e, and_(
                 e.c.decision_id == DECISIONS.c.id,
                 e.c.decision_evaluated_at == DECISIONS.c.evaluated_at)))
             .where(_in(DECISIONS.c.evaluated_at, month))
             .order_by(DECISIONS.c.evaluated_at, DECISIONS.c.id))
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
    for row in result.mappings():
        escalation = None
        if row["escalation_id"] is not None:
            escalation = {c.name: row[f"escalation_{c.name}"] for c in e.c
                          if c.name not in ("decision_id", "decision_evaluated_at")}
            escalation["steps"] = steps.get(escalation["id"], [])
        yield {
            "decision_id": row["id"], "ruleset": names.get(row["ruleset_id"]),
            "ruleset_id": row["ruleset_id"], "version": row["version"],
            "outcome": row["outcome"], "input": row["input"],
            "fired_rules": row["fired_rules"], "deciding_rules": row["deciding_rules"],
            "fallback": row["fallback"], "fallback_reason": row["fallback_reason"],
            "caller": row["caller"], "idempotency_key": row["idempotency_key"],
            "request_hash": row["request_hash"], "evaluated_at": row["evaluated_at"],
            "duration_ms": row["duration_ms"], "paused_outcome": row["paused_outcome"],
            "paused_reason": row["paused_reason"], "escalation": escalation}


class RetentionStore:
    """The decision log's months on one database."""

    def __init__(self, engine: Database) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self.engine.dialect.name

    @property
    def drops_partitions(self) -> bool:
        """Whether a month goes by dropping its partitions (PostgreSQL) rather than by
        deleting its rows; there every month that ended has partitions, empty or not."""
        return self.dialect == "postgresql"

    def survey(self, cutoff: datetime) -> Survey:
        """The months that ended before the cutoff, with their counts."""
        with self.engine.connect() as conn:
            months = _months(conn, cutoff)
            old = 0
            if partitions.is_partitioned(conn):
                old = int(conn.execute(text(
                    "SELECT count(*) FROM decisions_default WHERE evaluated_at < :cutoff"),
                    {"cutoff": cutoff}).scalar() or 0)
            counted = {m: _counts(conn, m) for m in months}
        return Survey(months, counted, old)

    @contextmanager
    def snapshot(self, month: Month) -> Iterator[tuple[Counts, Iterator[dict[str, Any]]]]:
        """The month's counts and its decisions' archive lines, from one snapshot:
        REPEATABLE READ on PostgreSQL, a read transaction on SQLite (WAL)."""
        reading = self.engine.execution_options(**(
            {"isolation_level": "REPEATABLE READ"} if self.dialect == "postgresql"
            else {READONLY_OPTION: True}))
        with reading.connect() as conn, conn.begin():
            yield _counts(conn, month), _lines(conn, month)

    def remove_month(self, month: Month, check: Callable[[Counts], None]) -> None:
        """Removes the month; ``check`` sees its counts first, in the removing transaction
        (with its partitions locked), and raises to remove nothing."""
        postgres = self.dialect == "postgresql"
        with self.engine.begin() as conn:
            if postgres and partitions.is_partitioned(conn):
                names = ", ".join(partitions.partition_names([month]))
                conn.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
            check(_counts(conn, month))
            if postgres and partitions.is_partitioned(conn):
                partitions.drop_month(conn, month)
                return
        while True:
            with self.engine.begin() as conn:
                batch = select(DECISIONS.c.id, DECISIONS.c.evaluated_at).where(
                    _in(DECISIONS.c.evaluated_at, month)).limit(DELETE_BATCH)
                rows = conn.execute(batch).all()
                if not rows:
                    return
                for start in range(0, len(rows), 500):
                    ids = [r[0] for r in rows[start:start + 500]]
                    conn.execute(delete(KEYS).where(KEYS.c.decision_id.in_(ids),
                                                    _in(KEYS.c.evaluated_at, month)))
                    conn.execute(delete(ESCALATIONS).where(
                        ESCALATIONS.c.decision_id.in_(ids),
                        _in(ESCALATIONS.c.decision_evaluated_at, month)))
                    conn.execute(delete(DECISIONS).where(DECISIONS.c.id.in_(ids),
                                                         _in(DECISIONS.c.evaluated_at, month)))


def _settled_events(cutoff: datetime) -> Any:
    """Events older than the cutoff, fanned out, with every delivery delivered or dead."""
    unsettled = select(DELIVERIES.c.event_id).where(
        DELIVERIES.c.event_id == OUTBOX.c.id, DELIVERIES.c.state.not_in(SETTLED))
    return select(OUTBOX.c.id).where(OUTBOX.c.occurred_at < cutoff,
                                     OUTBOX.c.dispatched_at.is_not(None),
                                     ~unsettled.exists())


def prune_notifications(engine: Database, cutoff: datetime, *,
                        dry_run: bool = False) -> tuple[int, int]:
    """Removes notification events older than the cutoff whose deliveries are all settled
    (delivered or dead), with those deliveries, in batches; returns (events, deliveries).
    Events still waiting for a delivery or a retry are kept."""
    if dry_run:
        with engine.connect() as conn:
            settled = _settled_events(cutoff).subquery()
            events = conn.execute(select(func.count()).select_from(settled)).scalar()
            deliveries = conn.execute(select(func.count()).select_from(DELIVERIES).where(
                DELIVERIES.c.event_id.in_(select(settled.c.id)))).scalar()
        return int(events or 0), int(deliveries or 0)
    removed_events = removed_deliveries = 0
    while True:
        with engine.begin() as conn:
            ids = [r[0] for r in conn.execute(_settled_events(cutoff).limit(DELETE_BATCH))]
            if not ids:
                return removed_events, removed_deliveries
            deliveries = int(conn.execute(select(func.count()).select_from(DELIVERIES)
                                          .where(DELIVERIES.c.event_id.in_(ids))).scalar()
                             or 0)
            removed_events += len(ids)
            removed_deliveries += deliveries
            conn.execute(delete(DELIVERIES).where(DELIVERIES.c.event_id.in_(ids)))
            conn.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(ids)))
