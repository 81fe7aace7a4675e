"""The weekly report as plain rules: which week it covers, which figures it reads from the
dashboard's, how each compares with the week before, and the words people read.

A week runs from Monday 00:00 UTC to the next Monday 00:00 UTC. Rates (exception rate)
compare in percentage points; counts, times and hours as a relative change in percent.
No I/O here: ``services.weekly_report`` reads the figures (the dashboard's own) and sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from typing import Any

WEEK = timedelta(days=7)
SEND_AT = timedelta(hours=7)
"""The scheduled report of a week goes out on the following Monday at 07:00 UTC."""

REPORT_ROLES: tuple[str, ...] = ("business_owner", "operations_owner")
"""The owners who receive a ruleset's weekly report (primary and backup of each)."""

COMPARISON_NOTE = ("rates compare in percentage points; counts, times and hours as a "
                   "relative change in percent")


# --------------------------------------------------------------------------- the week


def week_start(day: date) -> date:
    """The Monday of the week holding ``day``."""
    return day - timedelta(days=day.weekday())


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    """The week [Monday 00:00 UTC, next Monday 00:00 UTC) starting on ``monday``."""
    start = datetime.combine(monday, time(0), tzinfo=UTC)
    return start, start + WEEK


def last_complete_week(now: datetime) -> date:
    """The Monday of the last week that has ended by ``now``."""
    return week_start(now.astimezone(UTC).date()) - WEEK


def parse_week(text: str, now: datetime) -> date:
    """The week named by ``YYYY-MM-DD`` (any day of it): its Monday. ValueError naming the
    problem when the text is no date or the week has not ended by ``now``."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD") from None
    if len(text.strip()) != 10:
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD")
    monday = week_start(day)
    _, end = week_bounds(monday)
    if end > now:
        raise ValueError(f"the week of {monday.isoformat()} ends on {end.date().isoformat()} "
                         f"00:00 UTC and is not over yet; the last complete week starts on "
                         f"{last_complete_week(now).isoformat()}")
    return monday


def scheduled_week(now: datetime) -> date | None:
    """The week whose report is due by ``now`` (sent from Monday 07:00 UTC until the next
    Monday 07:00): the last complete week, or None before 07:00 on a Monday."""
    now = now.astimezone(UTC)
    this_monday = week_start(now.date())
    start, _ = week_bounds(this_monday)
    if now < start + SEND_AT:
        return None
    return this_monday - WEEK


# --------------------------------------------------------------------------- the figures


class Kind(Enum):
    """How a figure is written and compared."""

    COUNT = "count"
    RATE = "rate"
    DURATION = "duration"
    HOURS = "hours"


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its label, its kind, what an absent value means, and
    where it is in the dashboard's figures of a ruleset."""

    key: str
    label: str
    kind: Kind
    absent: str
    path: tuple[str, ...]


FIGURES: tuple[Figure, ...] = (
    Figure("decisions", "decisions", Kind.COUNT, "no decisions", ("decisions", "count")),
    Figure("cycle_time", "cycle time (median time to resolve an escalation)", Kind.DURATION,
           "no escalation resolved",
           ("escalations", "resolution_time_seconds", "p50")),
    Figure("exception_rate", "exception rate", Kind.RATE, "no decisions",
           ("exception_rate",)),
    Figure("approval_delay", "approval delay (median, proposed to active)", Kind.DURATION,
           "no version activated",
           ("change_approval", "proposed_to_active_seconds", "median")),
    Figure("fallbacks", "fallback activations", Kind.COUNT, "no decisions",
           ("fallbacks", "count")),
    Figure("hours_saved", "hours saved", Kind.HOURS, "no decisions",
           ("impact", "hours_saved")),
)
"""The report's figures, in the order they are read; throughput is the decision count of
the week (also given per hour)."""


def figure_value(entry: Mapping[str, Any], figure: Figure) -> float | None:
    """The figure's value in one ruleset's dashboard entry; None when it has none."""
    value: Any = entry
    for key in figure.path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if figure.kind is Kind.COUNT:
        return int(value)
    return float(value)


def week_values(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """Every figure of the report from one ruleset's dashboard entry, by key. The counts of
    an empty week are None too (a rate or count of nothing is "no decisions")."""
    values = {f.key: figure_value(entry, f) for f in FIGURES}
    if not values["decisions"]:
        for f in FIGURES:
            if f.absent == "no decisions":
                values[f.key] = None
    return values


# --------------------------------------------------------------------------- the words


def format_value(kind: Kind, value: float) -> str:
    """A figure's value as people read it: ``1,234``, ``12.5%``, ``2h 05m``, ``3.5``."""
    if kind is Kind.COUNT:
        return f"{int(value):,}"
    if kind is Kind.RATE:
        return f"{value * 100:.1f}%"
    if kind is Kind.HOURS:
        return f"{value:,.1f}"
    return format_duration(value)


def format_duration(seconds: float) -> str:
    """A duration in the largest units that keep it short: ``45s``, ``12m``, ``2h 05m``,
    ``3d 4h``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@dataclass(frozen=True)
class Change:
    """One figure of a week beside the week before, in numbers and in words."""

    key: str
    label: str
    this_week: float | None
    week_before: float | None
    direction: str
    """``up``, ``down``, ``same``, or ``none`` when either week has no value."""
    difference: float | None
    """Rates: percentage points; anything else: percent of the week before (None when the
    week before was zero or absent)."""
    unit: str
    """``percentage points`` or ``percent``."""
    words: str
    """The value and its comparison, e.g. ``12.0% (up from 8.0%, +4.0 percentage points)``."""

    @property
    def sentence(self) -> str:
        """The label and the words: ``exception rate 12.0% (up from 8.0%, ...)``, or
        ``exception rate: no decisions (...)`` when the week has no value."""
        joint = ": " if self.this_week is None else " "
        return f"{self.label}{joint}{self.words}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"figure": self.key, "label": self.label, "this_week": self.this_week,
                "week_before": self.week_before, "direction": self.direction,
                "difference": self.difference, "unit": self.unit, "words": self.words,
                "sentence": self.sentence}


def _direction(now: float, before: float, kind: Kind) -> str:
    # Compare what people read, so "12.0% (up from 12.0%)" never happens.
    if format_value(kind, now) == format_value(kind, before):
        return "same"
    return "up" if now > before else "down"


def compare(figure: Figure, this_week: float | None, week_before: float | None) -> Change:
    """The figure of a week beside the week before, with the direction of the change."""
    unit = "percentage points" if figure.kind is Kind.RATE else "percent"
    if this_week is None or week_before is None:
        if this_week is None and week_before is None:
            words = f"{figure.absent} (nor the week before)"
        elif this_week is None:
            words = (f"{figure.absent} (the week before: "
                     f"{format_value(figure.kind, week_before or 0)})")
        else:
            words = f"{format_value(figure.kind, this_week)} ({figure.absent} the week before)"
        return Change(figure.key, figure.label, this_week, week_before, "none", None, unit,
                      words)
    shown, shown_before = (format_value(figure.kind, v) for v in (this_week, week_before))
    direction = _direction(this_week, week_before, figure.kind)
    if direction == "same":
        return Change(figure.key, figure.label, this_week, week_before, "same", 0.0, unit,
                      f"{shown} (the same as the week before)")
    difference: float | None
    if figure.kind is Kind.RATE:
        difference = round((this_week - week_before) * 100, 1)
        amount = f", {difference:+.1f} percentage points"
    elif week_before:
        difference = round((this_week - week_before) / week_before * 100, 1)
        amount = f", {difference:+.1f}%"
    else:
        difference, amount = None, ""
    return Change(figure.key, figure.label, this_week, week_before, direction, difference,
                  unit, f"{shown} ({direction} from {shown_before}{amount})")


def compare_weeks(this_week: Mapping[str, Any], week_before: Mapping[str, Any]
                  ) -> list[Change]:
    """Every figure of two dashboard entries of one ruleset, this week beside the one
    before, in the report's order."""
    now, before = week_values(this_week), week_values(week_before)
    return [compare(f, now[f.key], before[f.key]) for f in FIGURES]


def owners_of(definition: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
    """The business and operations owners (primary and backup) named in a definition."""
    owners = definition.get("owners")
    out: dict[str, dict[str, str | None]] = {}
    for role in REPORT_ROLES:
        holders = owners.get(role) if isinstance(owners, Mapping) else None
        if isinstance(holders, Mapping) and holders.get("primary"):
            backup = holders.get("backup")
            out[role] = {"primary": str(holders["primary"]),
                         "backup": str(backup) if backup else None}
    return out


def recipients(owners: Mapping[str, Mapping[str, str | None]]) -> list[str]:
    """Who receives the report: each report role's primary, then backup, once each."""
    out: list[str] = []
    for role in REPORT_ROLES:
        holders = owners.get(role) or {}
        for name in (holders.get("primary"), holders.get("backup")):
            if name and name not in out:
                out.append(name)
    return out


def owners_words(owners: Mapping[str, Mapping[str, str | None]]) -> str:
    """``business owner: alice (backup bob); operations owner: carol`` (or "no owners")."""
    parts = []
    for role in REPORT_ROLES:
        holders = owners.get(role)
        if not holders:
            continue
        backup = f" (backup {holders['backup']})" if holders.get("backup") else ""
        parts.append(f"{role.replace('_', ' ')}: {holders.get('primary')}{backup}")
    return "; ".join(parts) or "no owners named"


def dashboard_path(ruleset: str) -> str:
    """The dashboard's page of one ruleset over the last 7 days."""
    return f"/dashboard?ruleset={ruleset}&window=7d"


def report_path(ruleset: str | None, monday: date) -> str:
    """The weekly report's page of one ruleset (or all) for the week starting ``monday``."""
    query = f"week={monday.isoformat()}"
    return f"/reports/weekly?{query}" + (f"&ruleset={ruleset}" if ruleset else "")


def headline(changes: Sequence[Change]) -> str:
    """The one line an email's subject carries: the exception rate, or "no decisions"."""
    by_key = {c.key: c for c in changes}
    decisions = by_key.get("decisions")
    if decisions is None or not decisions.this_week:
        return "no decisions"
    rate = by_key.get("exception_rate")
    return rate.sentence if rate is not None else decisions.sentence


def heading(monday: date) -> str:
    """The report's first line: the week, the week it is compared with, and how."""
    _, end = week_bounds(monday)
    return (f"Weekly report for the week of Monday {monday.isoformat()} "
            f"({monday.isoformat()} 00:00 to {end.date().isoformat()} 00:00 UTC), each figure "
            f"beside the week of {(monday - WEEK).isoformat()}; {COMPARISON_NOTE}.")


def is_quiet(changes: Sequence[Change]) -> bool:
    """Whether neither week had a decision (the report then says so once)."""
    return all(c.this_week is None and c.week_before is None for c in changes
               if c.key == "decisions")


def ruleset_lines(name: str, title: str, version: int | None,
                  owners: Mapping[str, Mapping[str, str | None]], changes: Sequence[Change],
                  per_hour: float | None, dashboard_url: str | None) -> list[str]:
    """One ruleset's part of the printed report: name, owners, each figure beside the week
    before (throughput also per hour), and the dashboard's address. When neither week has
    a decision, one line says so instead of each figure having none."""
    active = f"version {version} active" if version is not None else "no active version"
    lines = [f"{name}: {title} ({active})", f"  {owners_words(owners)}"]
    quiet = is_quiet(changes)
    if quiet:
        lines.append("  no decisions this week, nor the week before")
    for change in changes:
        if quiet and change.this_week is None and change.week_before is None:
            continue
        sentence = change.sentence
        if change.key == "decisions" and per_hour is not None:
            sentence += f", {per_hour:,.1f} per hour"
        lines.append(f"  {sentence}")
    if dashboard_url:
        lines.append(f"  dashboard: {dashboard_url}")
    return lines
