"""Shadows and their results in the database (``domain.shadow``).

The decision log is the shadow runner's queue: ``unshadowed`` finds the recorded decisions
of a shadow's window that have no result yet by an anti-join (``NOT EXISTS``), never by a
cursor over ids, so a decision committed late (decisions are not committed in the order
they are stamped) is still found as long as it lies in the window. Results are inserted
with ``ON CONFLICT DO NOTHING`` on (shadow, decision): a retried or racing pass never
counts a decision twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rules_service.adapters.orm import DecisionRow, ShadowResultRow, ShadowRow
from rules_service.domain.shadow import (
    EndReason,
    ResultCount,
    ResultState,
    Shadow,
    ShadowExample,
    ShadowResult,
    ShadowTally,
)

EXAMPLE_POOL = 200
"""Newest disagreements read to pick the examples from (one per change in turn)."""

RUNNER_LOCK = 0x5348_4144
"""The PostgreSQL advisory lock held by the one shadow runner at work ("SHAD")."""


def _shadow(row: ShadowRow) -> Shadow:
    return Shadow(row.id, row.ruleset_id, row.version, row.sample, row.alert_above,
                  row.started_by, row.since, row.scanned_until, row.ended_at, row.ended_by,
                  row.end_reason, row.alerted_at)


class ShadowRepository:
    """Reads and writes ``shadows`` and ``shadow_results`` in the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ shadows

    def lead(self) -> bool:
        """Takes the runners' lock until this transaction ends: True for the one runner
        that may work now. On PostgreSQL an advisory lock (several workers may run); on
        SQLite, where one worker runs, always True without starting a transaction."""
        if self.session.get_bind().dialect.name != "postgresql":
            return True
        return bool(self.session.execute(
            select(func.pg_try_advisory_xact_lock(RUNNER_LOCK))).scalar_one())

    def start(self, ruleset_id: int, version: int, *, sample: float,
              alert_above: float | None, actor: str, now: datetime) -> Shadow:
        """A new shadow of the version from ``now``; a running one ends as restarted."""
        self.end_for_version(ruleset_id, version, now, actor, EndReason.RESTARTED)
        row = ShadowRow(ruleset_id=ruleset_id, version=version, sample=sample,
                        alert_above=alert_above, started_by=actor, since=now,
                        scanned_until=now)
        self.session.add(row)
        self.session.flush()
        return _shadow(row)

    def latest(self, ruleset_id: int, version: int) -> Shadow | None:
        """The version's newest shadow, running or ended; None when it was never shadowed."""
        row = self.session.scalars(
            select(ShadowRow).where(ShadowRow.ruleset_id == ruleset_id,
                                    ShadowRow.version == version)
            .order_by(ShadowRow.id.desc()).limit(1)).first()
        return _shadow(row) if row is not None else None

    def get(self, shadow_id: int) -> Shadow | None:
        """One shadow by id."""
        row = self.session.get(ShadowRow, shadow_id)
        return _shadow(row) if row is not None else None

    def end_for_version(self, ruleset_id: int, version: int, at: datetime, actor: str,
                        reason: EndReason) -> bool:
        """Ends the version's running shadow, if any; True when one ended."""
        result = self.session.execute(
            update(ShadowRow)
            .where(ShadowRow.ruleset_id == ruleset_id, ShadowRow.version == version,
                   ShadowRow.ended_at.is_(None))
            .values(ended_at=at, ended_by=actor, end_reason=reason.value)
            .execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0))

    def running(self, ruleset_id: int | None = None) -> list[Shadow]:
        """Shadows not ended, oldest first (of one ruleset, or all)."""
        stmt = select(ShadowRow).where(ShadowRow.ended_at.is_(None)).order_by(ShadowRow.id)
        if ruleset_id is not None:
            stmt = stmt.where(ShadowRow.ruleset_id == ruleset_id)
        return [_shadow(r) for r in self.session.scalars(stmt)]

    def with_work(self) -> list[Shadow]:
        """Shadows the runner still reads for: running ones, and ended ones whose read
        position has not reached their end (decisions made before the end still count)."""
        stmt = (select(ShadowRow)
                .where(or_(ShadowRow.ended_at.is_(None),
                           ShadowRow.scanned_until < ShadowRow.ended_at))
                .order_by(ShadowRow.id))
        return [_shadow(r) for r in self.session.scalars(stmt)]

    def advance(self, shadow_id: int, scanned_until: datetime) -> None:
        """Moves the shadow's read position forward (never back)."""
        self.session.execute(
            update(ShadowRow)
            .where(ShadowRow.id == shadow_id, ShadowRow.scanned_until < scanned_until)
            .values(scanned_until=scanned_until)
            .execution_options(synchronize_session=False))

    def mark_alerted(self, shadow_id: int, at: datetime) -> bool:
        """Notes that the alert was raised; True only for the one caller that noted it."""
        result = self.session.execute(
            update(ShadowRow)
            .where(ShadowRow.id == shadow_id, ShadowRow.alerted_at.is_(None))
            .values(alerted_at=at).execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0))

    # ------------------------------------------------------------------ the queue

    def unshadowed(self, shadow: Shadow, low: datetime, high: datetime | None,
                   limit: int) -> list[tuple[str, datetime]]:
        """(id, evaluated_at) of the ruleset's decisions stamped in [low, high) that the
        shadow has no result for, oldest first."""
        done = exists().where(ShadowResultRow.shadow_id == shadow.id,
                              ShadowResultRow.decision_id == DecisionRow.id)
        stmt = (select(DecisionRow.id, DecisionRow.evaluated_at)
                .where(DecisionRow.ruleset_id == shadow.ruleset_id,
                       DecisionRow.evaluated_at >= low, ~done)
                .order_by(DecisionRow.evaluated_at, DecisionRow.id).limit(limit))
        if high is not None:
            stmt = stmt.where(DecisionRow.evaluated_at < high)
        return [(r.id, r.evaluated_at) for r in self.session.execute(stmt)]

    def recorded(self, keys: Sequence[tuple[str, datetime]]
                 ) -> list[tuple[str, datetime, dict[str, Any], str]]:
        """(id, evaluated_at, input, outcome) of the decisions with these keys, in order."""
        out: dict[str, tuple[str, datetime, dict[str, Any], str]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            stmt = select(DecisionRow.id, DecisionRow.evaluated_at, DecisionRow.input,
                          DecisionRow.outcome).where(
                DecisionRow.id.in_([k for k, _ in chunk]),
                DecisionRow.evaluated_at.in_({at for _, at in chunk}))
            for r in self.session.execute(stmt):
                out[r.id] = (r.id, r.evaluated_at, dict(r.input), r.outcome)
        return [out[k] for k, _ in keys if k in out]

    def add_results(self, shadow_id: int, results: Iterable[ShadowResult]) -> None:
        """Stores results; one already stored for the same decision is kept as it is."""
        values = [{"shadow_id": shadow_id, "decision_id": r.decision_id,
                   "evaluated_at": r.evaluated_at, "state": r.state.value,
                   "active_outcome": r.active_outcome, "shadow_outcome": r.shadow_outcome,
                   "fallback": r.fallback} for r in results]
        if not values:
            return
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(insert(ShadowResultRow).on_conflict_do_nothing(
            index_elements=["shadow_id", "decision_id"]), values)

    # ------------------------------------------------------------------ the figures

    def tally(self, shadow_id: int) -> ShadowTally:
        """The counts of the shadow's results."""
        stmt = (select(ShadowResultRow.state, ShadowResultRow.active_outcome,
                       ShadowResultRow.shadow_outcome, ShadowResultRow.fallback,
                       func.count())
                .where(ShadowResultRow.shadow_id == shadow_id)
                .group_by(ShadowResultRow.state, ShadowResultRow.active_outcome,
                          ShadowResultRow.shadow_outcome, ShadowResultRow.fallback))
        return ShadowTally.of(ResultCount(ResultState(s), a, o, bool(f), int(n))
                              for s, a, o, f, n in self.session.execute(stmt))

    def examples(self, shadow_id: int, limit: int) -> tuple[ShadowExample, ...]:
        """Up to ``limit`` of the newest disagreements, one per change in turn."""
        stmt = (select(ShadowResultRow.decision_id, ShadowResultRow.active_outcome,
                       ShadowResultRow.shadow_outcome)
                .where(and_(ShadowResultRow.shadow_id == shadow_id,
                            ShadowResultRow.state == ResultState.DECIDED.value,
                            ShadowResultRow.shadow_outcome != ShadowResultRow.active_outcome))
                .order_by(ShadowResultRow.evaluated_at.desc(),
                          ShadowResultRow.decision_id.desc())
                .limit(EXAMPLE_POOL))
        groups: dict[str, list[ShadowExample]] = {}
        for decision_id, active, shadowed in self.session.execute(stmt):
            groups.setdefault(f"{active}->{shadowed}", []).append(
                ShadowExample(decision_id, active, str(shadowed)))
        out: list[ShadowExample] = []
        while len(out) < limit and any(groups.values()):
            for queue in groups.values():
                if queue and len(out) < limit:
                    out.append(queue.pop(0))
        return tuple(out)
