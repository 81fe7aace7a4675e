"""The queries behind the operations figures: reads of the rollups, escalations and versions.

Decision figures are read from the rollups (``adapters.rollups``), never from the decisions:
a window reads its whole days from the daily rollups and its ragged ends from the hourly
and then the minute ones, as one UNION ALL. Open and overdue escalations are COUNTs over an
index covering them (status, ruleset, due time). Each query returns the tallies of
``domain.figures``, per ruleset id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, Subquery, case, func, select, tuple_, union_all
from sqlalchemy.orm import Session

from rules_service.adapters.escalations import breaches_by_ruleset
from rules_service.adapters.orm import (
    CYCLE_COLUMNS,
    HISTOGRAM_COLUMNS,
    AuditEventRow,
    EscalationRow,
    VersionRow,
    decision_totals,
    rollup_pending,
)
from rules_service.adapters.rollups import DECISION_TIERS, ESCALATION_TIERS, Tier, spans
from rules_service.domain import figures
from rules_service.domain.figures import ChangeTally, DecisionTally, EscalationTally, VersionState
from rules_service.domain.lifecycle import AuditAction, VersionStatus, ensure_utc

ESCALATION_OPEN = "open"

_Ts = TypeVarTuple("_Ts")


def _in_window(column: Any, since: datetime, until: datetime) -> ColumnElement[bool]:
    return (column >= since) & (column < until)


def _only(stmt: Select[*_Ts], column: Any, ids: list[int] | None
          ) -> Select[*_Ts]:
    return stmt if ids is None else stmt.where(column.in_(ids))


def _spanned(tiers: Sequence[Tier], start: datetime, end: datetime, ids: list[int] | None,
             columns: Sequence[str]) -> Subquery | None:
    """The rollup rows covering minute-aligned [start, end): whole days, then hours, then
    minutes (``adapters.rollups.spans``), as one UNION ALL, so one round trip reads them."""
    parts = []
    for table, lower, upper in spans(start, end, tiers):
        part = select(*(table.c[c] for c in columns)).where(
            table.c.bucket_start >= lower, table.c.bucket_start < upper)
        parts.append(_only(part, table.c.ruleset_id, ids))
    if not parts:
        return None
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()


def _settings(v: type[VersionRow]) -> list[ColumnElement[Any]]:
    """The parts of a version's definition the figures read (``figures.FIGURE_SETTINGS``),
    selected by JSON path: a few bytes each, not the whole definition."""
    return [v.definition[path] for path in figures.FIGURE_SETTINGS]


_DECISION_COLUMNS = ("ruleset_id", "outcome", "fallback", "count", "duration_sum",
                     "duration_max", *HISTOGRAM_COLUMNS)
_ESCALATION_COLUMNS = ("ruleset_id", "resolved", "resolved_with_target",
                       "resolved_within_target", "seconds_sum", "seconds_max", *CYCLE_COLUMNS)


class FigureQueries:
    """The figure queries, in the transaction of one unit of work."""

    def __init__(self, session: Session):
        self.session = session

    def decision_tallies(self, ids: list[int] | None, start: datetime,
                         end: datetime) -> dict[int, DecisionTally]:
        """Per ruleset, the rollups of minute-aligned [start, end)."""
        tallies: dict[int, DecisionTally] = defaultdict(DecisionTally)
        rows = _spanned(DECISION_TIERS, start, end, ids, _DECISION_COLUMNS)
        if rows is None:
            return tallies
        r = rows.c
        stmt = (select(r.ruleset_id, r.outcome, r.fallback, func.sum(r["count"]),
                       func.sum(r.duration_sum), func.max(r.duration_max),
                       *(func.sum(r[h]) for h in HISTOGRAM_COLUMNS))
                .group_by(r.ruleset_id, r.outcome, r.fallback))
        for rid, outcome, fallback, count, total, top, *histogram in self.session.execute(stmt):
            tallies[rid].add(outcome, bool(fallback), int(count), float(total or 0.0),
                             float(top) if top is not None else None, histogram)
        return tallies

    def open_escalations(self, ids: list[int] | None,
                         now: datetime) -> dict[int, tuple[int, int]]:
        """(open, overdue) escalations by ruleset, as of now."""
        e = EscalationRow
        # Read from ix_escalations_status_ruleset_id_due_at alone: O(open escalations).
        stmt = (select(e.ruleset_id, func.count(), func.count(case((e.due_at < now, 1))))
                .where(e.status == ESCALATION_OPEN).group_by(e.ruleset_id))
        return {rid: (int(count), int(overdue))
                for rid, count, overdue in self.session.execute(_only(stmt, e.ruleset_id, ids))}

    def escalation_tallies(self, ids: list[int] | None, start: datetime,
                           end: datetime, now: datetime) -> dict[int, EscalationTally]:
        """Per ruleset, open and overdue now, and the resolutions of minute-aligned
        [start, end)."""
        tallies: dict[int, EscalationTally] = defaultdict(EscalationTally)
        for rid, (count, overdue) in self.open_escalations(ids, now).items():
            tallies[rid].open = count
            tallies[rid].overdue = overdue
        rows = _spanned(ESCALATION_TIERS, start, end, ids, _ESCALATION_COLUMNS)
        if rows is None:
            return tallies
        r = rows.c
        stmt = (select(r.ruleset_id, func.sum(r.resolved), func.sum(r.resolved_with_target),
                       func.sum(r.resolved_within_target), func.sum(r.seconds_sum),
                       func.max(r.seconds_max), *(func.sum(r[c]) for c in CYCLE_COLUMNS))
                .group_by(r.ruleset_id))
        for rid, resolved, with_target, within, total, top, *histogram in \
                self.session.execute(stmt):
            tallies[rid].merge(EscalationTally(
                resolved=int(resolved), resolved_with_target=int(with_target),
                resolved_within_target=int(within), seconds_sum=float(total or 0.0),
                seconds_max=float(top) if top is not None else None,
                histogram=[int(n) for n in histogram]))
        return tallies

    def breaches(self, ids: list[int] | None, since: datetime,
                 until: datetime) -> dict[int, int]:
        """Per ruleset, the escalations due in [since, until) that passed their target."""
        return breaches_by_ruleset(self.session, since=since, until=until, ruleset_ids=ids)

    def change_tallies(self, ids: list[int] | None, since: datetime,
                       until: datetime) -> dict[int, ChangeTally]:
        """Per ruleset, versions proposed in [since, until) and the delays of the lifecycle
        stages completed in it (first activations from the audit trail)."""
        v = VersionRow
        tallies: dict[int, ChangeTally] = defaultdict(ChangeTally)
        proposed_stmt = (select(v.ruleset_id, func.count())
                         .where(_in_window(v.created_at, since, until)).group_by(v.ruleset_id))
        for rid, count in self.session.execute(_only(proposed_stmt, v.ruleset_id, ids)):
            tallies[rid].proposed = int(count)
        approved_stmt = (select(v.ruleset_id, v.created_at, v.approved_at)
                         .where(_in_window(v.approved_at, since, until)))
        for rid, created, approved in self.session.execute(
                _only(approved_stmt, v.ruleset_id, ids)):
            seconds = figures.duration_seconds(created, approved)
            if seconds is not None:
                tallies[rid].proposed_to_approved.append(seconds)
        self._activation_delays(tallies, ids, since, until)
        return tallies

    def _activation_delays(self, tallies: dict[int, ChangeTally], ids: list[int] | None,
                           since: datetime, until: datetime) -> None:
        v, a = VersionRow, AuditEventRow
        first = (select(a.ruleset_id.label("rid"), a.version.label("number"),
                        func.min(a.at).label("at"))
                 .where(a.action == AuditAction.ACTIVATED.value, a.version.is_not(None))
                 .group_by(a.ruleset_id, a.version).subquery())
        activated_stmt = (select(v.ruleset_id, v.created_at, v.approved_at, first.c.at)
                          .join(first,
                                (first.c.rid == v.ruleset_id) & (first.c.number == v.number))
                          .where(_in_window(first.c.at, since, until)))
        for rid, created, approved, activated in self.session.execute(
                _only(activated_stmt, v.ruleset_id, ids)):
            activated = ensure_utc(activated) if isinstance(activated, datetime) else activated
            to_active = figures.duration_seconds(approved, activated)
            if to_active is not None:
                tallies[rid].approved_to_active.append(to_active)
            whole = figures.duration_seconds(created, activated)
            if whole is not None:
                tallies[rid].proposed_to_active.append(whole)

    def version_states(self, ids: list[int] | None) -> dict[int, VersionState]:
        """Per ruleset, its active version (with the settings the figures read) and how many
        versions are pending or scheduled: one query over the few versions not retired."""
        v = VersionRow
        active: dict[int, VersionState] = {}
        opened: dict[tuple[int, str], int] = defaultdict(int)
        stmt = select(v.ruleset_id, v.status, v.number, *_settings(v)).where(
            v.status.in_((VersionStatus.ACTIVE.value, VersionStatus.PENDING.value,
                          VersionStatus.APPROVED.value)))
        for rid, status, number, impact, escalation in self.session.execute(
                _only(stmt, v.ruleset_id, ids)):
            if status == VersionStatus.ACTIVE.value:
                target, minutes = figures.figure_settings(impact, escalation)
                active[rid] = VersionState(int(number), target, minutes)
            else:
                opened[(rid, status)] += 1
        return {rid: replace(active.get(rid, VersionState()),
                             pending=opened[(rid, VersionStatus.PENDING.value)],
                             scheduled=opened[(rid, VersionStatus.APPROVED.value)])
                for rid in set(active) | {rid for rid, _ in opened}}

    def all_time_tallies(self) -> tuple[dict[int, DecisionTally], dict[tuple[int, int], int]]:
        """Per ruleset, the all-time decision tally (from ``decision_totals``); and the
        auto-decided count per (ruleset, version)."""
        t = decision_totals.c
        tallies: dict[int, DecisionTally] = defaultdict(DecisionTally)
        auto_by_version: dict[tuple[int, int], int] = defaultdict(int)
        for rid, version, outcome, fallback, count, total, top, *histogram in \
                self.session.execute(
                    select(t.ruleset_id, t.version, t.outcome, t.fallback, t["count"],
                           t.duration_sum, t.duration_max, *(t[h] for h in HISTOGRAM_COLUMNS))):
            tallies[rid].add(outcome, bool(fallback), int(count), float(total),
                             float(top), histogram)
            if figures.is_auto_decided(outcome, bool(fallback)):
                auto_by_version[(rid, int(version))] += int(count)
        return tallies, auto_by_version

    def uncounted(self) -> tuple[int, datetime | None]:
        """Decisions recorded but not yet folded into the rollups (``rollup_pending``), and
        the oldest one's time (None: none wait)."""
        p = rollup_pending.c
        count, oldest = self.session.execute(
            select(func.count(), func.min(p.evaluated_at)).select_from(rollup_pending)).one()
        return int(count), None if oldest is None else ensure_utc(oldest)

    def minutes_saved_by_version(self, keys: list[tuple[int, int]]
                                 ) -> dict[tuple[int, int], float | None]:
        """Minutes saved per auto-decision of each (ruleset, version) named: its definition's
        ``impact`` part alone, read by JSON path."""
        minutes: dict[tuple[int, int], float | None] = {}
        if not keys:
            return minutes
        v = VersionRow
        for rid, number, impact in self.session.execute(
                select(v.ruleset_id, v.number, v.definition["impact"])
                .where(tuple_(v.ruleset_id, v.number).in_(keys))):
            minutes[(rid, int(number))] = figures.minutes_saved_per_auto_decision(
                {"impact": impact})
        return minutes
