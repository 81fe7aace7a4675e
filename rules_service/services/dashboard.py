"""Operations figures: the dashboard and the figures behind /metrics.

The database does the counting, and the decisions are never scanned: every decision
figure is read from the rollups (``adapters.rollups``), which count the decisions by
ruleset, version, outcome and fallback, with a latency histogram, per minute, hour and
day and for all time, in the same transaction that records them. A figure therefore costs
O(buckets), not O(decisions), and is right however many server processes recorded the
rows. Escalation cycle times come from the escalation rollups (per minute, hour and day
of resolution); open and overdue escalations from COUNTs over an index covering them
(status, ruleset, due time), so they cost O(open escalations).

Latency and cycle-time percentiles come from the histograms (``domain.figures.
histogram_percentile``): the value reported lies in the same histogram bucket as the exact
nearest-rank percentile, interpolated by rank inside it and capped at the observed
maximum; the error is less than that bucket's width (latency buckets are a 1-2-5 series,
so within a factor 2.5 of the exact value). Counts, shares, rates, means and maxima are
exact.

Windows are whole minutes: a decision (or resolution) counts when the minute it falls in
starts in [since, until) with both ends rounded down to the minute; a window that ends
now includes the current minute, so what was recorded at now is counted. The answer
gives these bounds as ``rollup_window``. Whole days of a window are read from the daily
rollups, its ragged ends from the hourly and then the minute ones: a window of any length
reads at most ~(days + 2 x 23 hours + 2 x 59 minutes) buckets per key.

Definitions, per ruleset and overall, for the window (default: the last 7 days):

- decisions: recorded decisions in the window (dry runs are never recorded, so never
  counted); throughput is that count per hour of the window.
- exception rate: the share of those decisions whose outcome is ``escalate``.
- fallback rate: the share decided by the ruleset's ``fallback`` (the engine could not decide).
- auto-decided: outcome ``approve`` or ``reject`` and not a fallback, i.e. settled by the
  rules with no person involved (``domain.figures.is_auto_decided``). Hours saved are the
  auto-decided count times the ACTIVE version's ``impact.minutes_saved_per_auto_decision``,
  divided by 60: today's valuation of the window's work.
- escalations raised: the escalate decisions of the window (recording one raises its
  escalation, at the same moment).
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, Subquery, case, func, select, tuple_, union_all
from sqlalchemy.orm import Session

from rules_service.adapters.orm import (
    CYCLE_COLUMNS,
    HISTOGRAM_COLUMNS,
    AuditEventRow,
    EscalationRow,
    VersionRow,
    decision_totals,
)
from rules_service.adapters.rollups import (
    DECISION_TIERS,
    ESCALATION_TIERS,
    Tier,
    minute_start,
    spans,
)
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import figures
from rules_service.domain.errors import NotFound, RequestInvalid
from rules_service.domain.lifecycle import AuditAction, VersionStatus, ensure_utc, parse_duration
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome
from rules_service.services import notifications
from rules_service.services.governance import activate_due

DEFAULT_WINDOW = timedelta(days=7)
MINUTE = timedelta(minutes=1)
_TICK = timedelta(microseconds=1)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
ESCALATION_OPEN = "open"
ESCALATION_RESOLVED = "resolved"


# --------------------------------------------------------------------------- gathering


def _empty_histogram(size: int = figures.LATENCY_BUCKET_COUNT) -> list[int]:
    return [0] * size


@dataclass
class _DecisionTally:
    """Counts, latency sum, maximum and histogram of one ruleset's (or all) decisions."""

    by_outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    fallbacks: int = 0
    auto_decided: int = 0
    duration_sum: float = 0.0
    duration_max: float | None = None
    histogram: list[int] = field(default_factory=_empty_histogram)

    @property
    def count(self) -> int:
        return sum(self.by_outcome.values())

    def add(self, outcome: str, fallback: bool, count: int, duration_sum: float,
            duration_max: float | None, histogram: Iterable[int]) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + count
        if fallback:
            self.fallbacks += count
        if figures.is_auto_decided(outcome, fallback):
            self.auto_decided += count
        self.duration_sum += duration_sum
        if duration_max is not None:
            self.duration_max = (duration_max if self.duration_max is None
                                 else max(self.duration_max, duration_max))
        self.histogram = [a + int(b) for a, b in zip(self.histogram, histogram, strict=True)]

    def merge(self, other: _DecisionTally) -> None:
        for outcome, count in other.by_outcome.items():
            self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + count
        self.fallbacks += other.fallbacks
        self.auto_decided += other.auto_decided
        self.duration_sum += other.duration_sum
        if other.duration_max is not None:
            self.duration_max = (other.duration_max if self.duration_max is None
                                 else max(self.duration_max, other.duration_max))
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]

    def latency(self) -> dict[str, float | None]:
        """Histogram percentiles, exact mean and maximum, in milliseconds."""
        return {**figures.histogram_percentiles(self.histogram, figures.LATENCY_BUCKETS_MS,
                                                figures.LATENCY_PERCENTILES,
                                                self.duration_max),
                "mean": figures.rate(self.duration_sum, self.count),
                "max": self.duration_max}


@dataclass
class _EscalationTally:
    """Escalation figures of one ruleset (or all)."""

    open: int = 0
    overdue: int = 0
    resolved: int = 0
    resolved_within_target: int = 0
    resolved_with_target: int = 0
    seconds_sum: float = 0.0
    seconds_max: float | None = None
    histogram: list[int] = field(
        default_factory=lambda: _empty_histogram(figures.CYCLE_BUCKET_COUNT))

    def merge(self, other: _EscalationTally) -> None:
        self.open += other.open
        self.overdue += other.overdue
        self.resolved += other.resolved
        self.resolved_within_target += other.resolved_within_target
        self.resolved_with_target += other.resolved_with_target
        self.seconds_sum += other.seconds_sum
        if other.seconds_max is not None:
            self.seconds_max = (other.seconds_max if self.seconds_max is None
                                else max(self.seconds_max, other.seconds_max))
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]

    def cycle_time(self) -> dict[str, Any]:
        """Count, histogram percentiles, exact mean and maximum of the resolution times."""
        return {"count": self.resolved,
                **figures.histogram_percentiles(self.histogram, figures.CYCLE_BUCKETS_S,
                                                figures.CYCLE_PERCENTILES, self.seconds_max),
                "mean": figures.rate(self.seconds_sum, self.resolved),
                "max": self.seconds_max}


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


_DECISION_COLUMNS = ("ruleset_id", "outcome", "fallback", "count", "duration_sum",
                     "duration_max", *HISTOGRAM_COLUMNS)


def _decision_tallies(session: Session, ids: list[int] | None, start: datetime,
                      end: datetime) -> dict[int, _DecisionTally]:
    """Per ruleset, the rollups of minute-aligned [start, end)."""
    tallies: dict[int, _DecisionTally] = defaultdict(_DecisionTally)
    rows = _spanned(DECISION_TIERS, start, end, ids, _DECISION_COLUMNS)
    if rows is None:
        return tallies
    r = rows.c
    stmt = (select(r.ruleset_id, r.outcome, r.fallback, func.sum(r["count"]),
                   func.sum(r.duration_sum), func.max(r.duration_max),
                   *(func.sum(r[h]) for h in HISTOGRAM_COLUMNS))
            .group_by(r.ruleset_id, r.outcome, r.fallback))
    for rid, outcome, fallback, count, total, top, *histogram in session.execute(stmt):
        tallies[rid].add(outcome, bool(fallback), int(count), float(total or 0.0),
                         float(top) if top is not None else None, histogram)
    return tallies


def _open_escalations(session: Session, ids: list[int] | None,
                      now: datetime) -> dict[int, tuple[int, int]]:
    """(open, overdue) escalations by ruleset, as of now."""
    e = EscalationRow
    # Read from ix_escalations_status_ruleset_id_due_at alone: O(open escalations).
    stmt = (select(e.ruleset_id, func.count(), func.count(case((e.due_at < now, 1))))
            .where(e.status == ESCALATION_OPEN).group_by(e.ruleset_id))
    return {rid: (int(count), int(overdue))
            for rid, count, overdue in session.execute(_only(stmt, e.ruleset_id, ids))}


_ESCALATION_COLUMNS = ("ruleset_id", "resolved", "resolved_with_target",
                       "resolved_within_target", "seconds_sum", "seconds_max", *CYCLE_COLUMNS)


def _escalation_tallies(session: Session, ids: list[int] | None, start: datetime,
                        end: datetime, now: datetime) -> dict[int, _EscalationTally]:
    tallies: dict[int, _EscalationTally] = defaultdict(_EscalationTally)
    for rid, (count, overdue) in _open_escalations(session, ids, now).items():
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
    for rid, resolved, with_target, within, total, top, *histogram in session.execute(stmt):
        tallies[rid].merge(_EscalationTally(
            resolved=int(resolved), resolved_with_target=int(with_target),
            resolved_within_target=int(within), seconds_sum=float(total or 0.0),
            seconds_max=float(top) if top is not None else None,
            histogram=[int(n) for n in histogram]))
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


def _figures(tally: _DecisionTally, escalations: _EscalationTally, changes: _ChangeTally,
             since: datetime, until: datetime) -> dict[str, Any]:
    count = tally.count
    shares = figures.shares(tally.by_outcome)
    return {
        "decisions": {"count": count, "per_hour": figures.per_hour(count, since, until)},
        "latency_ms": tally.latency(),
        "outcomes": {o: {"count": tally.by_outcome.get(o, 0), "share": shares.get(o)}
                     for o in tally.by_outcome},
        "exception_rate": shares.get(figures.ESCALATE),
        "fallbacks": {"count": tally.fallbacks, "rate": figures.rate(tally.fallbacks, count)},
        "escalations": {
            "raised": tally.by_outcome.get(figures.ESCALATE, 0),
            "open": escalations.open,
            "overdue": escalations.overdue,
            "resolved": escalations.resolved,
            "resolved_within_target": escalations.resolved_within_target,
            "resolved_within_target_rate": figures.rate(escalations.resolved_within_target,
                                                        escalations.resolved_with_target),
            "resolution_time_seconds": escalations.cycle_time(),
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
        total.merge(t)
    return total


def _merge_escalations(tallies: Iterable[_EscalationTally]) -> _EscalationTally:
    total = _EscalationTally()
    for t in tallies:
        total.merge(t)
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
    try:
        if isinstance(until, timedelta):
            end = now - until
        else:
            end = ensure_utc(until) if until is not None else now
    except (OverflowError, ValueError):
        raise RequestInvalid([Problem("until", "the window's end lies outside the years "
                                               "1-9999")]) from None
    try:
        if isinstance(since, timedelta):
            start = end - since
        else:
            start = ensure_utc(since) if since is not None else end - DEFAULT_WINDOW
    except (OverflowError, ValueError):
        raise RequestInvalid([Problem("since", "the window's start lies outside the years "
                                               "1-9999")]) from None
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
        # Whole minutes: both ends rounded down, except that a window ending now holds
        # the current minute, so what was recorded at this very moment is counted.
        lower = minute_start(start)
        upper = minute_start(end) + MINUTE if until is None else minute_start(end)
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
        decisions = _decision_tallies(session, ids, lower, upper)
        escalations = _escalation_tallies(session, ids, lower, upper, now)
        breaches = notifications.breaches_by_ruleset(session, since=start, until=end,
                                                     ruleset_ids=ids)
        # Versions and their audit trail are small: their exact window stays.
        exact_upper = end + _TICK if until is None else end
        changes = _change_tallies(session, ids, start, exact_upper)
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
        entry.update(_figures(tally, escalations.get(rid, _EscalationTally()),
                              changes.get(rid, _ChangeTally()), start, end))
        target = figures.response_time_target(state.definition)
        entry["escalations"]["response_time_target"] = target
        # Escalations due in the window that passed their target (the worker's timers).
        entry["escalations"]["breached"] = breaches.get(rid, 0)
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
        overall_tally, _merge_escalations(escalations.values()), _merge_changes(changes.values()),
        start, end))
    overall["escalations"]["breached"] = sum(breaches.values())
    overall["impact"] = {"auto_decided": overall_tally.auto_decided, "hours_saved": total_hours}
    return {
        "window": {"since": start.isoformat(), "until": end.isoformat(),
                   "hours": figures.window_hours(start, end)},
        "rollup_window": {"since": lower.isoformat(), "until": upper.isoformat()},
        "percentile_method": figures.PERCENTILE_METHOD,
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
    latency_histogram: list[int]
    """Decisions per latency bucket (``figures.LATENCY_BUCKETS_MS``, then the unbounded one)."""
    latency_sum_ms: float


def metrics_snapshot(uow: UnitOfWork) -> list[RulesetCounters]:
    """Every ruleset's all-time counters and current gauges, read from the database.

    The counts and the latency histogram come from the all-time rollups
    (``decision_totals``: a row per ruleset, version, outcome and fallback), so a scrape
    costs the same whatever the number of decisions. Hours saved here value each
    auto-decided decision at the minutes of the version that made it (not the active
    one), so the total only ever grows, as a counter must.
    """
    activate_due(uow)
    with uow.readonly():
        now = ensure_utc(uow.now())
        session = uow.session
        t = decision_totals.c
        rows = [(rs.id, rs.name, rs.title) for rs in uow.rulesets.list_all()]
        tallies: dict[int, _DecisionTally] = defaultdict(_DecisionTally)
        auto_by_version: dict[tuple[int, int], int] = defaultdict(int)
        for rid, version, outcome, fallback, count, total, top, *histogram in session.execute(
                select(t.ruleset_id, t.version, t.outcome, t.fallback, t["count"],
                       t.duration_sum, t.duration_max, *(t[h] for h in HISTOGRAM_COLUMNS))):
            tallies[rid].add(outcome, bool(fallback), int(count), float(total),
                             float(top), histogram)
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
    out = []
    for rid, name, _title in rows:
        open_count, overdue = escalations.get(rid, (0, 0))
        state = states.get(rid, _VersionState(None, {}, 0, 0))
        tally = tallies[rid]
        out.append(RulesetCounters(
            ruleset=name, decisions_by_outcome=dict(tally.by_outcome),
            fallbacks=tally.fallbacks, escalations_open=open_count,
            escalations_overdue=overdue, active_version=state.active_version,
            pending_versions=state.pending, hours_saved=hours[rid],
            latency_histogram=list(tally.histogram), latency_sum_ms=tally.duration_sum))
    return out
