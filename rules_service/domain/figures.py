"""Operations figures as pure functions of plain values, and the tallies they are made from.

Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the
value at rank ceil(p/100 * n) (1-based). It always returns one of the observed values
(never an interpolation), so p50 <= p95 <= p99 and each lies within [min, max]; it is
also exactly what PostgreSQL's ``percentile_disc`` computes, so the database can do the
work when there are many values.

Recorded figures (decision latency, escalation cycle time) are counted into histogram
buckets as they are written, so their percentiles come from bucket counts
(``histogram_percentile``): the estimate lies in the same bucket as the nearest-rank value.

Rates and statistics of nothing are ``None``, not 0: "no decisions" is not "no fallbacks".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from rules_service.domain.lifecycle import parse_duration
from rules_service.domain.ruleset import Outcome

# The percentiles the dashboard reports, in percent.
LATENCY_PERCENTILES: tuple[int, ...] = (50, 95, 99)
CYCLE_PERCENTILES: tuple[int, ...] = (50, 95)

# A decision is auto-decided when the ruleset itself settled it: no person needed.
AUTO_OUTCOMES: frozenset[str] = frozenset({"approve", "reject"})
ESCALATE = "escalate"


def nearest_rank(n: int, p: float) -> int:
    """The 1-based rank of the p-th percentile among n sorted values (n >= 1, 0 <= p <= 100)."""
    if n < 1:
        raise ValueError("a percentile needs at least one value")
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got {p}")
    # Exact arithmetic: 0.95 * 20 in floats is not reliably 19.
    rank = math.ceil(Fraction(str(p)) * n / 100)
    return min(max(rank, 1), n)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The nearest-rank p-th percentile of the values; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[nearest_rank(len(ordered), p) - 1]


def percentiles(values: Iterable[float], ps: Sequence[int] = LATENCY_PERCENTILES
                ) -> dict[str, float | None]:
    """Several nearest-rank percentiles at once, keyed ``p50``, ``p95``, ..."""
    ordered = sorted(values)
    if not ordered:
        return {f"p{p}": None for p in ps}
    return {f"p{p}": ordered[nearest_rank(len(ordered), p) - 1] for p in ps}


def mean(values: Iterable[float]) -> float | None:
    """The arithmetic mean; None when there are no values."""
    items = list(values)
    return math.fsum(items) / len(items) if items else None


def median(values: Iterable[float]) -> float | None:
    """The nearest-rank median (an observed value); None when there are no values."""
    return percentile(values, 50)


def rate(part: int | float, whole: int | float) -> float | None:
    """part / whole, or None when the whole is zero (a share of nothing is undefined)."""
    if whole < 0 or part < 0:
        raise ValueError(f"a rate needs non-negative counts, got {part}/{whole}")
    return part / whole if whole else None


def shares(counts: Mapping[str, int]) -> dict[str, float | None]:
    """Each count's share of the total; None for every key when the total is zero."""
    total = sum(counts.values())
    return {key: rate(count, total) for key, count in counts.items()}


def window_hours(since: datetime, until: datetime) -> float:
    """The length of a window in hours; ValueError when it ends before it starts."""
    if until < since:
        raise ValueError(f"the window ends ({until.isoformat()}) before it starts "
                         f"({since.isoformat()})")
    return (until - since) / timedelta(hours=1)


def per_hour(count: int, since: datetime, until: datetime) -> float | None:
    """Throughput: count per hour over the window; None for an empty window."""
    hours = window_hours(since, until)
    return count / hours if hours else None


def duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from start to end; None when either is missing or end precedes start."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def hours_saved(auto_decided: int, minutes_per_decision: float | None) -> float:
    """Business impact: auto-decided decisions times minutes saved each, in hours."""
    if auto_decided < 0:
        raise ValueError(f"a count cannot be negative, got {auto_decided}")
    if not minutes_per_decision or minutes_per_decision < 0:
        return 0.0
    return auto_decided * minutes_per_decision / 60.0


def is_auto_decided(outcome: str, fallback: bool) -> bool:
    """A decision made without a person: approve or reject, by the rules, not the fallback.

    An escalation needs a person by definition; a fallback outcome is a safety net the
    engine fell into, not a decision the policy made, so it saves nobody's time.
    """
    return outcome in AUTO_OUTCOMES and not fallback


def response_time_target(definition: Mapping[str, Any]) -> str | None:
    """The runbook's escalation response-time target (``4h``) from a version's definition."""
    runbook = definition.get("runbook")
    escalation = runbook.get("escalation") if isinstance(runbook, Mapping) else None
    target = escalation.get("response_time_target") if isinstance(escalation, Mapping) else None
    return str(target) if target is not None else None


def minutes_saved_per_auto_decision(definition: Mapping[str, Any]) -> float | None:
    """``impact.minutes_saved_per_auto_decision`` from a version's definition, if given."""
    impact = definition.get("impact")
    value = impact.get("minutes_saved_per_auto_decision") if isinstance(impact, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# Latency histogram bucket bounds in milliseconds (upper bounds, "le"), a 1-2-5 series
# per decade; a last, unbounded bucket follows. Recorded decisions are counted into these
# buckets (the rollups), so percentiles come from counts, never from rows: a reported
# percentile lies in the same bucket as the true one (see ``histogram_percentile``).
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
    1000.0, 2000.0, 5000.0, 10000.0)
LATENCY_BUCKET_COUNT = len(LATENCY_BUCKETS_MS) + 1

# Escalation cycle-time (resolution time) bucket bounds in seconds: 1, 5, 15 and 30
# minutes, 1, 2, 4, 8 and 12 hours, 1, 2, 3, 7, 14 and 30 days; a last, unbounded one follows.
CYCLE_BUCKETS_S: tuple[float, ...] = (
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
    172800.0, 259200.0, 604800.0, 1209600.0, 2592000.0)
CYCLE_BUCKET_COUNT = len(CYCLE_BUCKETS_S) + 1

PERCENTILE_METHOD = (
    "histogram: the bucket holding the nearest-rank value (rank ceil(p/100 x n)) is found "
    "from the bucket counts, and the value is interpolated linearly inside it (capped at "
    "the observed maximum); the true nearest-rank percentile lies in the same bucket, so "
    "the error is less than that bucket's width (latency buckets form a 1-2-5 series, so "
    "at most a factor 2.5); beyond the last bound the observed maximum is reported")


def histogram_bucket(value: float, bounds: Sequence[float]) -> int:
    """The index of the bucket (upper bounds inclusive) a value falls in; last: unbounded."""
    return bisect.bisect_left(bounds, value)


def latency_bucket(duration_ms: float) -> int:
    """The index of the histogram bucket a duration falls in (the last one is unbounded)."""
    return histogram_bucket(duration_ms, LATENCY_BUCKETS_MS)


def cycle_bucket(seconds: float) -> int:
    """The index of the cycle-time bucket a resolution time falls in."""
    return histogram_bucket(seconds, CYCLE_BUCKETS_S)


def histogram_percentile(counts: Sequence[int], bounds: Sequence[float], p: float,
                         maximum: float | None = None) -> float | None:
    """The p-th percentile estimated from bucket counts; None when they count nothing.

    ``counts[i]`` counts the values in (bounds[i-1], bounds[i]] (from 0 for the first, and
    above the last bound for ``counts[len(bounds)]``). The bucket is the one holding the
    nearest-rank value; inside it the value is interpolated linearly by rank, as if the
    bucket's values were spread evenly, and capped at ``maximum`` (the observed largest
    value) when given. So the result lies in the same bucket as the exact nearest-rank
    percentile of the values: its error is less than the bucket's width. In the unbounded
    last bucket the result is ``maximum`` (or the last bound when it is unknown).
    """
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(bounds)} bounds need {len(bounds) + 1} counts, "
                         f"got {len(counts)}")
    total = sum(counts)
    if total == 0:
        return None
    rank = nearest_rank(total, p)
    before = 0
    for index, count in enumerate(counts):
        if before + count < rank:
            before += count
            continue
        lower = bounds[index - 1] if index > 0 else 0.0
        if index == len(bounds):
            return maximum if maximum is not None else lower
        upper = bounds[index]
        if rank - before == count:
            value = upper
        else:
            value = lower + (upper - lower) * (rank - before) / count
            # Float rounding must not move the value out of (lower, upper].
            value = min(max(value, math.nextafter(lower, math.inf)), upper)
        # The first bucket holds its lower bound (0) too, so a maximum of 0 caps it as well.
        capped = maximum is not None and (maximum > lower or index == 0)
        return min(value, maximum) if capped and maximum is not None else value
    raise AssertionError("the rank is within the total")  # pragma: no cover


def histogram_percentiles(counts: Sequence[int], bounds: Sequence[float],
                          ps: Sequence[int] = LATENCY_PERCENTILES,
                          maximum: float | None = None) -> dict[str, float | None]:
    """Several histogram percentiles at once, keyed ``p50``, ``p95``, ..."""
    return {f"p{p}": histogram_percentile(counts, bounds, p, maximum) for p in ps}


def histogram_of(values: Iterable[float], bounds: Sequence[float]) -> list[int]:
    """The bucket counts of the values (what the rollups hold for them)."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[histogram_bucket(value, bounds)] += 1
    return counts


# --------------------------------------------------------------------------- tallies
# What the dashboard and /metrics add up per ruleset (and overall) before shaping figures.

OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)


def _empty_histogram(size: int | None = None) -> list[int]:
    return [0] * (LATENCY_BUCKET_COUNT if size is None else size)


@dataclass
class DecisionTally:
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
        if is_auto_decided(outcome, fallback):
            self.auto_decided += count
        self.duration_sum += duration_sum
        if duration_max is not None:
            self.duration_max = (duration_max if self.duration_max is None
                                 else max(self.duration_max, duration_max))
        self.histogram = [a + int(b) for a, b in zip(self.histogram, histogram, strict=True)]

    def merge(self, other: DecisionTally) -> None:
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
        return {**histogram_percentiles(self.histogram, LATENCY_BUCKETS_MS,
                                        LATENCY_PERCENTILES, self.duration_max),
                "mean": rate(self.duration_sum, self.count),
                "max": self.duration_max}


@dataclass
class EscalationTally:
    """Escalation figures of one ruleset (or all)."""

    open: int = 0
    overdue: int = 0
    resolved: int = 0
    resolved_within_target: int = 0
    resolved_with_target: int = 0
    seconds_sum: float = 0.0
    seconds_max: float | None = None
    histogram: list[int] = field(default_factory=lambda: _empty_histogram(CYCLE_BUCKET_COUNT))

    def merge(self, other: EscalationTally) -> None:
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
                **histogram_percentiles(self.histogram, CYCLE_BUCKETS_S, CYCLE_PERCENTILES,
                                        self.seconds_max),
                "mean": rate(self.seconds_sum, self.resolved),
                "max": self.seconds_max}


@dataclass
class ChangeTally:
    """Version lifecycle delays of one ruleset (or all), in seconds."""

    proposed: int = 0
    proposed_to_approved: list[float] = field(default_factory=list)
    approved_to_active: list[float] = field(default_factory=list)
    proposed_to_active: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class VersionState:
    """A ruleset's active version, the two settings of its definition the figures read, and
    its open versions."""

    active_version: int | None = None
    response_time_target: str | None = None
    minutes_saved_per_auto_decision: float | None = None
    pending: int = 0
    scheduled: int = 0


FIGURE_SETTINGS: tuple[tuple[str, ...], ...] = (("impact",), ("runbook", "escalation"))
"""The only parts of a version's definition the figures read: the database hands these back
instead of the whole definition, which can hold thousands of rules."""


def figure_settings(impact: Any, escalation: Any) -> tuple[str | None, float | None]:
    """The response-time target and the minutes saved per auto-decision, from a definition's
    ``impact`` and ``runbook.escalation`` parts (either may be missing)."""
    part = {"impact": impact, "runbook": {"escalation": escalation}}
    return response_time_target(part), minutes_saved_per_auto_decision(part)


def merge_decisions(tallies: Iterable[DecisionTally]) -> DecisionTally:
    total = DecisionTally()
    for t in tallies:
        total.merge(t)
    return total


def merge_escalations(tallies: Iterable[EscalationTally]) -> EscalationTally:
    total = EscalationTally()
    for t in tallies:
        total.merge(t)
    return total


def merge_changes(tallies: Iterable[ChangeTally]) -> ChangeTally:
    total = ChangeTally()
    for t in tallies:
        total.proposed += t.proposed
        total.proposed_to_approved.extend(t.proposed_to_approved)
        total.approved_to_active.extend(t.approved_to_active)
        total.proposed_to_active.extend(t.proposed_to_active)
    return total


def stage_figures(seconds: list[float]) -> dict[str, Any]:
    """Count, median, mean and maximum of one lifecycle stage's delays."""
    return {"count": len(seconds), "median": median(seconds),
            "mean": mean(seconds), "max": max(seconds) if seconds else None}


def target_seconds(target: str | None) -> float | None:
    """A response-time target in seconds; None when absent or unreadable."""
    if target is None:
        return None
    try:
        return parse_duration(target).total_seconds()
    except ValueError:
        return None  # an unreadable target is reported as written, without seconds


def window_figures(tally: DecisionTally, escalations: EscalationTally, changes: ChangeTally,
                   since: datetime, until: datetime) -> dict[str, Any]:
    """The dashboard's figures of one ruleset (or all) for the window [since, until)."""
    count = tally.count
    outcome_shares = shares(tally.by_outcome)
    return {
        "decisions": {"count": count, "per_hour": per_hour(count, since, until)},
        "latency_ms": tally.latency(),
        "outcomes": {o: {"count": tally.by_outcome.get(o, 0), "share": outcome_shares.get(o)}
                     for o in tally.by_outcome},
        "exception_rate": outcome_shares.get(ESCALATE),
        "fallbacks": {"count": tally.fallbacks, "rate": rate(tally.fallbacks, count)},
        "escalations": {
            "raised": tally.by_outcome.get(ESCALATE, 0),
            "open": escalations.open,
            "overdue": escalations.overdue,
            "resolved": escalations.resolved,
            "resolved_within_target": escalations.resolved_within_target,
            "resolved_within_target_rate": rate(escalations.resolved_within_target,
                                                escalations.resolved_with_target),
            "resolution_time_seconds": escalations.cycle_time(),
        },
        "change_approval": {
            "proposed": changes.proposed,
            "proposed_to_approved_seconds": stage_figures(changes.proposed_to_approved),
            "approved_to_active_seconds": stage_figures(changes.approved_to_active),
            "proposed_to_active_seconds": stage_figures(changes.proposed_to_active),
        },
    }
