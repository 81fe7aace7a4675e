"""Operations figures: the dashboard and the figures behind /metrics.

The database does the counting, and the decisions are never scanned: every decision
figure is read from the rollups (``adapters.rollups``; the queries are in
``adapters.rollup_queries``), which count the decisions by ruleset, version, outcome and
fallback, with a latency histogram, per minute, hour and day and for all time: the
rollup fold (``adapters.rollup_fold``) adds each recorded decision to them exactly once,
at most ``rollup_fold.FIGURES_BEHIND_S`` after it is recorded. A figure therefore costs
O(buckets), not O(decisions), and is right however many server processes recorded the
rows. Escalation
cycle times come from the escalation rollups (per minute, hour and day of resolution);
open and overdue escalations from COUNTs over an index covering them (status, ruleset,
due time), so they cost O(open escalations).

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rules_service.adapters.rollups import minute_start
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import figures
from rules_service.domain.errors import NotFound, RequestInvalid
from rules_service.domain.figures import (
    ChangeTally,
    DecisionTally,
    EscalationTally,
    VersionState,
)
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem
from rules_service.services import pause_periods
from rules_service.services.governance import activate_due
from rules_service.services.shadow import versions_in_shadow

DEFAULT_WINDOW = timedelta(days=7)
MINUTE = timedelta(minutes=1)
_TICK = timedelta(microseconds=1)


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


def _named_rulesets(uow: UnitOfWork, ruleset: str | None
                    ) -> tuple[list[tuple[int, str, str]], list[int] | None]:
    """(id, name, title) of the ruleset asked for (404 when unknown) or of all; and the ids
    to filter on (None: all)."""
    if ruleset is None:
        return [(rs.id, rs.name, rs.title) for rs in uow.rulesets.list_all()], None
    row = uow.rulesets.get(ruleset)
    if row is None:
        raise NotFound(f"no ruleset named {ruleset}")
    # Plain tuples: rows are expired once the unit of work ends.
    return [(row.id, row.name, row.title)], [row.id]


@dataclass(frozen=True)
class _Gathered:
    decisions: dict[int, DecisionTally]
    escalations: dict[int, EscalationTally]
    breaches: dict[int, int]
    changes: dict[int, ChangeTally]
    states: dict[int, VersionState]


def _ruleset_entry(rid: int, name: str, title: str, got: _Gathered, start: datetime,
                   end: datetime) -> dict[str, Any]:
    state = got.states.get(rid, VersionState())
    tally = got.decisions.get(rid, DecisionTally())
    entry: dict[str, Any] = {
        "ruleset": name,
        "title": title,
        "active_version": state.active_version,
        "pending_versions": state.pending,
        "scheduled_versions": state.scheduled,
    }
    entry.update(figures.window_figures(tally, got.escalations.get(rid, EscalationTally()),
                                        got.changes.get(rid, ChangeTally()), start, end))
    target = state.response_time_target
    entry["escalations"]["response_time_target"] = target
    # Escalations due in the window that passed their target (the worker's timers).
    entry["escalations"]["breached"] = got.breaches.get(rid, 0)
    entry["escalations"]["response_time_target_seconds"] = figures.target_seconds(target)
    minutes = state.minutes_saved_per_auto_decision
    entry["impact"] = {"auto_decided": tally.auto_decided,
                       "minutes_saved_per_auto_decision": minutes,
                       "hours_saved": figures.hours_saved(tally.auto_decided, minutes)}
    return entry


def _overall(per_ruleset: list[dict[str, Any]], got: _Gathered, start: datetime,
             end: datetime) -> dict[str, Any]:
    overall_tally = figures.merge_decisions(got.decisions.values())
    overall: dict[str, Any] = {
        "rulesets": len(per_ruleset),
        "pending_versions": sum(e["pending_versions"] for e in per_ruleset),
        "scheduled_versions": sum(e["scheduled_versions"] for e in per_ruleset),
    }
    overall.update(figures.window_figures(
        overall_tally, figures.merge_escalations(got.escalations.values()),
        figures.merge_changes(got.changes.values()), start, end))
    overall["escalations"]["breached"] = sum(got.breaches.values())
    total_hours = 0.0
    for entry in per_ruleset:
        total_hours += entry["impact"]["hours_saved"]
    overall["impact"] = {"auto_decided": overall_tally.auto_decided, "hours_saved": total_hours}
    return overall


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
        rows, ids = _named_rulesets(uow, ruleset)
        queries = uow.figures
        # Versions and their audit trail are small: their exact window stays.
        exact_upper = end + _TICK if until is None else end
        got = _Gathered(
            decisions=queries.decision_tallies(ids, lower, upper),
            escalations=queries.escalation_tallies(ids, lower, upper, now),
            breaches=queries.breaches(ids, start, end),
            changes=queries.change_tallies(ids, start, exact_upper),
            states=queries.version_states(ids))
        paused = {rid: pause_periods.figures(uow, rid, name, start, end)
                  for rid, name, _ in rows}
    per_ruleset = [{**_ruleset_entry(rid, name, title, got, start, end),
                    "paused": paused[rid]} for rid, name, title in rows]
    in_shadow = [s.to_dict() for s in versions_in_shadow(uow, ruleset)]
    return {
        "window": {"since": start.isoformat(), "until": end.isoformat(),
                   "hours": figures.window_hours(start, end)},
        "rollup_window": {"since": lower.isoformat(), "until": upper.isoformat()},
        "percentile_method": figures.PERCENTILE_METHOD,
        "generated_at": now.isoformat(),
        "ruleset": ruleset,
        "overall": {**_overall(per_ruleset, got, start, end),
                    "paused": {"decisions": sum(p["decisions"] for p in paused.values())}},
        "rulesets": per_ruleset,
        "in_shadow": in_shadow,
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


@dataclass(frozen=True)
class MetricsSnapshot:
    """What a scrape of /metrics reads from the database, in one transaction."""

    rulesets: list[RulesetCounters]
    uncounted: Uncounted


def metrics_snapshot(uow: UnitOfWork) -> MetricsSnapshot:
    """Every ruleset's all-time counters and current gauges, and the decisions not yet
    counted, read from the database in one transaction.

    The counts and the latency histogram come from the all-time rollups
    (``decision_totals``: a row per ruleset, version, outcome and fallback), so a scrape
    costs the same whatever the number of decisions. Hours saved here value each
    auto-decided decision at the minutes of the version that made it (not the active
    one), so the total only ever grows, as a counter must.
    """
    activate_due(uow)
    with uow.readonly():
        now = ensure_utc(uow.now())
        queries = uow.figures
        rows = [(rs.id, rs.name, rs.title) for rs in uow.rulesets.list_all()]
        tallies, auto_by_version = queries.all_time_tallies()
        minutes = queries.minutes_saved_by_version(list(auto_by_version))
        escalations = queries.open_escalations(None, now)
        states = queries.version_states(None)
        uncounted = _uncounted(*queries.uncounted(), now)
    hours: dict[int, float] = defaultdict(float)
    for key, count in auto_by_version.items():
        hours[key[0]] += figures.hours_saved(count, minutes.get(key))
    out = []
    for rid, name, _title in rows:
        open_count, overdue = escalations.get(rid, (0, 0))
        state = states.get(rid, VersionState())
        tally = tallies[rid]
        out.append(RulesetCounters(
            ruleset=name, decisions_by_outcome=dict(tally.by_outcome),
            fallbacks=tally.fallbacks, escalations_open=open_count,
            escalations_overdue=overdue, active_version=state.active_version,
            pending_versions=state.pending, hours_saved=hours[rid],
            latency_histogram=list(tally.histogram), latency_sum_ms=tally.duration_sum))
    return MetricsSnapshot(out, uncounted)


@dataclass(frozen=True)
class Uncounted:
    """Decisions recorded but not yet in the figures: the rollup fold counts each within
    about 2 s, so a number that stays up means the fold is failing."""

    decisions: int
    oldest_age_s: float
    """How long the oldest of them has waited (0: none wait)."""


def _uncounted(count: int, oldest: datetime | None, now: datetime) -> Uncounted:
    return Uncounted(count, round(figures.duration_seconds(oldest, now) or 0.0, 3))
