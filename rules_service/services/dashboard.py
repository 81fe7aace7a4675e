"""Operations figures (contract section 6): the dashboard and the figures behind /metrics.

The database does the counting: every figure is an aggregate over the decisions,
escalations, versions and audit tables, so it is right however many server processes
recorded the rows. Latency percentiles are nearest-rank (see ``domain.figures``),
computed in SQL with window functions (``ROW_NUMBER`` over the window's durations) so no
durations are loaded; the same statement runs on SQLite and PostgreSQL.

Definitions, per ruleset and overall, for the window [since, until) (default: the last
7 days; a window that ends now includes what was recorded at now):

- decisions: recorded decisions whose ``evaluated_at`` lies in the window (dry runs are
  never recorded, so never counted); throughput is that count per hour of the window.
- exception rate: the share of those decisions whose outcome is ``escalate``.
- fallback rate: the share decided by the ruleset's ``fallback`` (the engine could not decide).
- auto-decided: outcome ``approve`` or ``reject`` and not a fallback, i.e. settled by the
  rules with no person involved (``domain.figures.is_auto_decided``). Hours saved are the
  auto-decided count times the ACTIVE version's ``impact.minutes_saved_per_auto_decision``,
  divided by 60: today's valuation of the window's work.
- escalations open / overdue: the state now, whatever the window (an open escalation is
  open now); overdue means open with ``due_at`` (set from the runbook's response-time
  target when the escalation was raised) before now.
- resolution time (cycle time): ``resolved_at - created_at`` of escalations resolved in the
  window; ``resolved_within_target`` counts those resolved by their ``due_at``.
- change approval delay: measured when a stage completes in the window. proposed ->
  approved over versions approved in the window; approved -> active and proposed -> active
  over versions first activated in the window. The first activation comes from the audit
  trail, because a rollback re-activates an old version and moves its ``activated_at``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, case, func, select, tuple_
from sqlalchemy.orm import Session

from rules_service.adapters.orm import (
    AuditEventRow,
    DecisionRow,
    EscalationRow,
    VersionRow,
)
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import figures
from rules_service.domain.errors import NotFound, RequestInvalid
from rules_service.domain.lifecycle import AuditAction, VersionStatus, ensure_utc, parse_duration
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome
from rules_service.services.governance import activate_due

DEFAULT_WINDOW = timedelta(days=7)
RECENT_LATENCY_WINDOW = timedelta(minutes=5)
_TICK = timedelta(microseconds=1)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
ESCALATION_OPEN = "open"
ESCALATION_RESOLVED = "resolved"


# --------------------------------------------------------------------------- gathering


@dataclass
class _DecisionTally:
    """Counts and latency sums of one ruleset's (or all) decisions in the window."""

    by_outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    fallbacks: int = 0
    auto_decided: int = 0
    duration_sum: float = 0.0
    duration_max: float | None = None

    @property
    def count(self) -> int:
        return sum(self.by_outcome.values())

    def add(self, outcome: str, fallback: bool, count: int, duration_sum: float,
            duration_max: float | None) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + count
        if fallback:
            self.fallbacks += count
        if figures.is_auto_decided(outcome, fallback):
            self.auto_decided += count
        self.duration_sum += duration_sum
        if duration_max is not None:
            self.duration_max = (duration_max if self.duration_max is None
                                 else max(self.duration_max, duration_max))


@dataclass
class _EscalationTally:
    """Escalation figures of one ruleset (or all)."""

    raised: int = 0
    open: int = 0
    overdue: int = 0
    resolved_seconds: list[float] = field(default_factory=list)
    resolved_within_target: int = 0
    resolved_with_target: int = 0


@dataclass
class _ChangeTally:
    """Version lifecycle delays of one ruleset (or all), in seconds."""

    proposed: int = 0
    proposed_to_approved: list[float] = field(default_factory=list)
    approved_to_active: list[float] = field(default_factory=list)
    proposed_to_active: list[float] = field(default_factory=list)


def _in_window(column: Any, since: datetime, until: datetime) -> ColumnElement[bool]:
    return (column >= since) & (column < until)


_Ts = TypeVarTuple("_Ts")


def _only(stmt: Select[*_Ts], column: Any, ids: list[int] | None
          ) -> Select[*_Ts]:
    return stmt if ids is None else stmt.where(column.in_(ids))


def _decision_tallies(session: Session, ids: list[int] | None, since: datetime,
                      until: datetime) -> dict[int, _DecisionTally]:
    d = DecisionRow
    stmt = (select(d.ruleset_id, d.outcome, d.fallback, func.count(), func.sum(d.duration_ms),
                   func.max(d.duration_ms))
            .where(_in_window(d.evaluated_at, since, until))
            .group_by(d.ruleset_id, d.outcome, d.fallback))
    tallies: dict[int, _DecisionTally] = defaultdict(_DecisionTally)
    for rid, outcome, fallback, count, total, top in session.execute(
            _only(stmt, d.ruleset_id, ids)):
        tallies[rid].add(outcome, bool(fallback), int(count), float(total or 0.0),
                         float(top) if top is not None else None)
    return tallies


def _latency_percentiles(session: Session, ids: list[int] | None, since: datetime,
                         until: datetime, *, per_ruleset: bool
                         ) -> dict[int | None, dict[str, float | None]]:
    """Nearest-rank percentiles of duration_ms, by ruleset (or over all, keyed None)."""
    d = DecisionRow
    partition = d.ruleset_id if per_ruleset else None
    ranked = _only(select(
        d.ruleset_id.label("rid"),
        d.duration_ms.label("ms"),
        func.row_number().over(partition_by=partition, order_by=d.duration_ms).label("rn"),
        func.count().over(partition_by=partition).label("n"),
    ).where(_in_window(d.evaluated_at, since, until)), d.ruleset_id, ids).subquery()
    # rank = ceil(p * n / 100) in integer arithmetic: (p * n + 99) // 100, same on both databases.
    columns = [func.max(case((ranked.c.rn == (ranked.c.n * p + 99) // 100, ranked.c.ms)))
               .label(f"p{p}") for p in figures.LATENCY_PERCENTILES]
    stmt = (select(ranked.c.rid, *columns).group_by(ranked.c.rid) if per_ruleset
            else select(*columns))
    out: dict[int | None, dict[str, float | None]] = {}
    for row in session.execute(stmt):
        values = list(row)
        key = values.pop(0) if per_ruleset else None
        if not per_ruleset and values[0] is None:
            continue  # no decisions at all: the aggregate row is all NULL
        out[key] = {f"p{p}": (float(v) if v is not None else None)
                    for p, v in zip(figures.LATENCY_PERCENTILES, values, strict=True)}
    return out


def _open_escalations(session: Session, ids: list[int] | None,
                      now: datetime) -> dict[int, tuple[int, int]]:
    """(open, overdue) escalations by ruleset, as of now."""
    e = EscalationRow
    stmt = (select(e.ruleset_id, func.count(), func.count(case((e.due_at < now, 1))))
            .where(e.status == ESCALATION_OPEN).group_by(e.ruleset_id))
    return {rid: (int(count), int(overdue))
            for rid, count, overdue in session.execute(_only(stmt, e.ruleset_id, ids))}


def _escalation_tallies(session: Session, ids: list[int] | None, since: datetime,
                        until: datetime, now: datetime) -> dict[int, _EscalationTally]:
    e = EscalationRow
    tallies: dict[int, _EscalationTally] = defaultdict(_EscalationTally)
    for rid, (count, overdue) in _open_escalations(session, ids, now).items():
        tallies[rid].open = count
        tallies[rid].overdue = overdue
    raised_stmt = (select(e.ruleset_id, func.count())
                   .where(_in_window(e.created_at, since, until)).group_by(e.ruleset_id))
    for rid, count in session.execute(_only(raised_stmt, e.ruleset_id, ids)):
        tallies[rid].raised = int(count)
    # Resolutions are made by people, so a window holds few enough to load.
    resolved_stmt = (select(e.ruleset_id, e.created_at, e.resolved_at, e.due_at)
                     .where(e.status == ESCALATION_RESOLVED,
                            _in_window(e.resolved_at, since, until)))
    for rid, created, resolved, due in session.execute(_only(resolved_stmt, e.ruleset_id, ids)):
        tally = tallies[rid]
        seconds = figures.duration_seconds(created, resolved)
        if seconds is not None:
            tally.resolved_seconds.append(seconds)
        if due is not None:
            tally.resolved_with_target += 1
            if resolved is not None and resolved <= due:
                tally.resolved_within_target += 1
    return tallies


def _change_tallies(session: Session, ids: list[int] | None, since: datetime,
                    until: datetime) -> dict[int, _ChangeTally]:
    v, a = VersionRow, AuditEventRow
    tallies: dict[int, _ChangeTally] = defaultdict(_ChangeTally)
    proposed_stmt = (select(v.ruleset_id, func.count())
                     .where(_in_window(v.created_at, since, until)).group_by(v.ruleset_id))
    for rid, count in session.execute(_only(proposed_stmt, v.ruleset_id, ids)):
        tallies[rid].proposed = int(count)
    approved_stmt = (select(v.ruleset_id, v.created_at, v.approved_at)
                     .where(_in_window(v.approved_at, since, until)))
    for rid, created, approved in session.execute(_only(approved_stmt, v.ruleset_id, ids)):
        seconds = figures.duration_seconds(created, approved)
        if seconds is not None:
            tallies[rid].proposed_to_approved.append(seconds)
    first = (select(a.ruleset_id.label("rid"), a.version.label("number"),
                    func.min(a.at).label("at"))
             .where(a.action == AuditAction.ACTIVATED.value, a.version.is_not(None))
             .group_by(a.ruleset_id, a.version).subquery())
    activated_stmt = (select(v.ruleset_id, v.created_at, v.approved_at, first.c.at)
                      .join(first, (first.c.rid == v.ruleset_id) & (first.c.number == v.number))
                      .where(_in_window(first.c.at, since, until)))
    for rid, created, approved, activated in session.execute(
            _only(activated_stmt, v.ruleset_id, ids)):
        activated = ensure_utc(activated) if isinstance(activated, datetime) else activated
        to_active = figures.duration_seconds(approved, activated)
        if to_active is not None:
            tallies[rid].approved_to_active.append(to_active)
        whole = figures.duration_seconds(created, activated)
        if whole is not None:
            tallies[rid].proposed_to_active.append(whole)
    return tallies


@dataclass(frozen=True)
class _VersionState:
    active_version: int | None
    definition: dict[str, Any]
    pending: int
    scheduled: int


def _version_states(session: Session, ids: list[int] | None) -> dict[int, _VersionState]:
    v = VersionRow
    active: dict[int, tuple[int, dict[str, Any]]] = {}
    stmt = select(v.ruleset_id, v.number, v.definition).where(
        v.status == VersionStatus.ACTIVE.value)
    for rid, number, definition in session.execute(_only(stmt, v.ruleset_id, ids)):
        active[rid] = (int(number), dict(definition or {}))
    opened: dict[tuple[int, str], int] = {}
    open_stmt = (select(v.ruleset_id, v.status, func.count())
                 .where(v.status.in_((VersionStatus.PENDING.value,
                                      VersionStatus.APPROVED.value)))
                 .group_by(v.ruleset_id, v.status))
    for rid, status, count in session.execute(_only(open_stmt, v.ruleset_id, ids)):
        opened[(rid, status)] = int(count)
    rids = set(active) | {rid for rid, _ in opened}
    return {rid: _VersionState(
        active_version=active[rid][0] if rid in active else None,
        definition=active[rid][1] if rid in active else {},
        pending=opened.get((rid, VersionStatus.PENDING.value), 0),
        scheduled=opened.get((rid, VersionStatus.APPROVED.value), 0)) for rid in rids}


# --------------------------------------------------------------------------- shaping


def _stage(seconds: list[float]) -> dict[str, Any]:
    return {"count": len(seconds), "median": figures.median(seconds),
            "mean": figures.mean(seconds), "max": max(seconds) if seconds else None}


def _target_seconds(target: str | None) -> float | None:
    if target is None:
        return None
    try:
        return parse_duration(target).total_seconds()
    except ValueError:
        return None  # an unreadable target is reported as written, without seconds


def _figures(tally: _DecisionTally, latency: dict[str, float | None] | None,
             escalations: _EscalationTally, changes: _ChangeTally, since: datetime,
             until: datetime) -> dict[str, Any]:
    count = tally.count
    shares = figures.shares(tally.by_outcome)
    resolved = escalations.resolved_seconds
    return {
        "decisions": {"count": count, "per_hour": figures.per_hour(count, since, until)},
        "latency_ms": {
            **(latency or dict.fromkeys(
                (f"p{p}" for p in figures.LATENCY_PERCENTILES), None)),
            "mean": figures.rate(tally.duration_sum, count),
            "max": tally.duration_max,
        },
        "outcomes": {o: {"count": tally.by_outcome.get(o, 0), "share": shares.get(o)}
                     for o in tally.by_outcome},
        "exception_rate": shares.get(figures.ESCALATE),
        "fallbacks": {"count": tally.fallbacks, "rate": figures.rate(tally.fallbacks, count)},
        "escalations": {
            "raised": escalations.raised,
            "open": escalations.open,
            "overdue": escalations.overdue,
            "resolved": len(resolved),
            "resolved_within_target": escalations.resolved_within_target,
            "resolved_within_target_rate": figures.rate(escalations.resolved_within_target,
                                                        escalations.resolved_with_target),
            "resolution_time_seconds": figures.duration_summary(resolved),
        },
        "change_approval": {
            "proposed": changes.proposed,
            "proposed_to_approved_seconds": _stage(changes.proposed_to_approved),
            "approved_to_active_seconds": _stage(changes.approved_to_active),
            "proposed_to_active_seconds": _stage(changes.proposed_to_active),
        },
    }


def _merge_decisions(tallies: Iterable[_DecisionTally]) -> _DecisionTally:
    total = _DecisionTally()
    for t in tallies:
        for outcome, count in t.by_outcome.items():
            total.by_outcome[outcome] = total.by_outcome.get(outcome, 0) + count
        total.fallbacks += t.fallbacks
        total.auto_decided += t.auto_decided
        total.duration_sum += t.duration_sum
        if t.duration_max is not None:
            total.duration_max = (t.duration_max if total.duration_max is None
                                  else max(total.duration_max, t.duration_max))
    return total


def _merge_escalations(tallies: Iterable[_EscalationTally]) -> _EscalationTally:
    total = _EscalationTally()
    for t in tallies:
        total.raised += t.raised
        total.open += t.open
        total.overdue += t.overdue
        total.resolved_seconds.extend(t.resolved_seconds)
        total.resolved_within_target += t.resolved_within_target
        total.resolved_with_target += t.resolved_with_target
    return total


def _merge_changes(tallies: Iterable[_ChangeTally]) -> _ChangeTally:
    total = _ChangeTally()
    for t in tallies:
        total.proposed += t.proposed
        total.proposed_to_approved.extend(t.proposed_to_approved)
        total.approved_to_active.extend(t.approved_to_active)
        total.proposed_to_active.extend(t.proposed_to_active)
    return total


# --------------------------------------------------------------------------- use cases


def dashboard_window(since: datetime | timedelta | None, until: datetime | timedelta | None,
                     now: datetime) -> tuple[datetime, datetime]:
    """The window [since, until): until defaults to now, since to 7 days before until.

    An age instead of a moment counts back: ``until=1h`` is an hour before now,
    ``since=24h`` is 24 hours before until (so it is the window's length).
    """
    now = ensure_utc(now)
    if isinstance(until, timedelta):
        end = now - until
    else:
        end = ensure_utc(until) if until is not None else now
    if isinstance(since, timedelta):
        start = end - since
    else:
        start = ensure_utc(since) if since is not None else end - DEFAULT_WINDOW
    if start >= end:
        place = "since" if since is not None else "until"
        raise RequestInvalid([Problem(place, f"the window must start before it ends: since "
                                             f"{start.isoformat()} is not before until "
                                             f"{end.isoformat()}")])
    return start, end


def dashboard(uow: UnitOfWork, *, ruleset: str | None = None,
              since: datetime | timedelta | None = None,
              until: datetime | timedelta | None = None) -> dict[str, Any]:
    """The operations figures for the window, per ruleset and overall; 404 unknown ruleset."""
    activate_due(uow)
    with uow.readonly():
        now = ensure_utc(uow.now())
        start, end = dashboard_window(since, until, now)
        # A window ending now includes what was recorded at this very moment: timestamps
        # have microsecond resolution, so "< now + 1us" is "<= now".
        upper = end + _TICK if until is None else end
        session = uow.session
        if ruleset is not None:
            row = uow.rulesets.get(ruleset)
            if row is None:
                raise NotFound(f"no ruleset named {ruleset}")
            # Plain tuples: rows are expired once the unit of work ends.
            rows = [(row.id, row.name, row.title)]
            ids: list[int] | None = [row.id]
        else:
            rows = [(rs.id, rs.name, rs.title) for rs in uow.rulesets.list_all()]
            ids = None
        decisions = _decision_tallies(session, ids, start, upper)
        latency = _latency_percentiles(session, ids, start, upper, per_ruleset=True)
        overall_latency = _latency_percentiles(session, ids, start, upper, per_ruleset=False)
        escalations = _escalation_tallies(session, ids, start, upper, now)
        changes = _change_tallies(session, ids, start, upper)
        states = _version_states(session, ids)

    per_ruleset: list[dict[str, Any]] = []
    total_hours = 0.0
    for rid, name, title in rows:
        state = states.get(rid, _VersionState(None, {}, 0, 0))
        tally = decisions.get(rid, _DecisionTally())
        entry: dict[str, Any] = {
            "ruleset": name,
            "title": title,
            "active_version": state.active_version,
            "pending_versions": state.pending,
            "scheduled_versions": state.scheduled,
        }
        entry.update(_figures(tally, latency.get(rid),
                              escalations.get(rid, _EscalationTally()),
                              changes.get(rid, _ChangeTally()), start, end))
        target = figures.response_time_target(state.definition)
        entry["escalations"]["response_time_target"] = target
        entry["escalations"]["response_time_target_seconds"] = _target_seconds(target)
        minutes = figures.minutes_saved_per_auto_decision(state.definition)
        hours = figures.hours_saved(tally.auto_decided, minutes)
        total_hours += hours
        entry["impact"] = {"auto_decided": tally.auto_decided,
                           "minutes_saved_per_auto_decision": minutes,
                           "hours_saved": hours}
        per_ruleset.append(entry)

    overall_tally = _merge_decisions(decisions.values())
    overall: dict[str, Any] = {
        "rulesets": len(rows),
        "pending_versions": sum(e["pending_versions"] for e in per_ruleset),
        "scheduled_versions": sum(e["scheduled_versions"] for e in per_ruleset),
    }
    overall.update(_figures(
        overall_tally, overall_latency.get(None),
        _merge_escalations(escalations.values()), _merge_changes(changes.values()),
        start, end))
    overall["impact"] = {"auto_decided": overall_tally.auto_decided, "hours_saved": total_hours}
    return {
        "window": {"since": start.isoformat(), "until": end.isoformat(),
                   "hours": figures.window_hours(start, end)},
        "generated_at": now.isoformat(),
        "ruleset": ruleset,
        "overall": overall,
        "rulesets": per_ruleset,
    }


# --------------------------------------------------------------------------- /metrics


@dataclass(frozen=True)
class RulesetCounters:
    """All-time figures of one ruleset, as /metrics exposes them."""

    ruleset: str
    decisions_by_outcome: dict[str, int]
    fallbacks: int
    escalations_open: int
    escalations_overdue: int
    active_version: int | None
    pending_versions: int
    hours_saved: float
    recent_latency_ms: dict[str, float | None]


def metrics_snapshot(uow: UnitOfWork) -> list[RulesetCounters]:
    """Every ruleset's all-time counters and current gauges, read from the database.

    Hours saved here value each auto-decided decision at the minutes of the version that
    made it (not the active one), so the total only ever grows, as a counter must.
    ``recent_latency_ms`` holds the latency percentiles of the last five minutes.
    """
    activate_due(uow)
    with uow.readonly():
        now = ensure_utc(uow.now())
        session = uow.session
        d = DecisionRow
        rows = [(rs.id, rs.name, rs.title) for rs in uow.rulesets.list_all()]
        by_outcome: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
        fallbacks: dict[int, int] = defaultdict(int)
        auto_by_version: dict[tuple[int, int], int] = defaultdict(int)
        for rid, version, outcome, fallback, count in session.execute(
                select(d.ruleset_id, d.version, d.outcome, d.fallback, func.count())
                .group_by(d.ruleset_id, d.version, d.outcome, d.fallback)):
            by_outcome[rid][outcome] = by_outcome[rid].get(outcome, 0) + int(count)
            if fallback:
                fallbacks[rid] += int(count)
            if figures.is_auto_decided(outcome, bool(fallback)):
                auto_by_version[(rid, int(version))] += int(count)
        minutes: dict[tuple[int, int], float | None] = {}
        if auto_by_version:
            v = VersionRow
            for rid, number, definition in session.execute(
                    select(v.ruleset_id, v.number, v.definition)
                    .where(tuple_(v.ruleset_id, v.number).in_(list(auto_by_version)))):
                minutes[(rid, int(number))] = figures.minutes_saved_per_auto_decision(
                    dict(definition or {}))
        hours: dict[int, float] = defaultdict(float)
        for key, count in auto_by_version.items():
            hours[key[0]] += figures.hours_saved(count, minutes.get(key))
        escalations = _open_escalations(session, None, now)
        states = _version_states(session, None)
        recent = _latency_percentiles(session, None, now - RECENT_LATENCY_WINDOW, now + _TICK,
                                      per_ruleset=True)
    out = []
    for rid, name, _title in rows:
        open_count, overdue = escalations.get(rid, (0, 0))
        state = states.get(rid, _VersionState(None, {}, 0, 0))
        out.append(RulesetCounters(
            ruleset=name, decisions_by_outcome=dict(by_outcome[rid]),
            fallbacks=fallbacks[rid], escalations_open=open_count,
            escalations_overdue=overdue, active_version=state.active_version,
            pending_versions=state.pending, hours_saved=hours[rid],
            recent_latency_ms=recent.get(rid, {})))
    return out
