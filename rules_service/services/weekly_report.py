"""The weekly report: each ruleset's figures of a week beside the week before, read by the
dashboard's own code (``services.dashboard.dashboard`` over the two weeks), printed by
``rules-service report weekly``, shown at ``/reports/weekly`` and ``GET /v1/reports/weekly``,
and sent (the event ``report.weekly``: a webhook to its subscriptions, an email to each
ruleset's business and operations owners) by hand with ``--send`` or by the worker every
Monday at 07:00 UTC.

The worker remembers each week it reported (``weekly_reports``) in the transaction that
queues the report's events, so a week is reported once however many workers run and
however often they restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import weekly_report as words
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem
from rules_service.domain.weekly_report import WEEK, Change
from rules_service.services import dashboard

EVENT = "report.weekly"


@dataclass(frozen=True)
class RulesetReport:
    """One ruleset's week beside the week before."""

    ruleset: str
    title: str
    active_version: int | None
    owners: dict[str, dict[str, str | None]]
    changes: list[Change]
    per_hour: float | None
    this_week: dict[str, Any] = field(repr=False)
    """The dashboard's figures of the ruleset for the week, as the dashboard gives them."""
    week_before: dict[str, Any] = field(repr=False)

    @property
    def quiet(self) -> bool:
        """Whether neither week had a decision."""
        return words.is_quiet(self.changes)

    @property
    def shown_changes(self) -> list[Change]:
        """The figures worth a line: all of them, unless neither week had a decision; then
        only those with a value in either week."""
        if not self.quiet:
            return list(self.changes)
        return [c for c in self.changes if c.this_week is not None or c.week_before is not None]

    @property
    def recipients(self) -> list[str]:
        """Who receives it by email: the business and operations owners, primary and backup."""
        return words.recipients(self.owners)

    def lines(self, base_url: str) -> list[str]:
        """The ruleset's part of the printed report."""
        link = base_url + words.dashboard_path(self.ruleset) if base_url else None
        return words.ruleset_lines(self.ruleset, self.title, self.active_version, self.owners,
                                   self.changes, self.per_hour, link)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: each figure beside the week before, and the dashboard's figures."""
        return {"ruleset": self.ruleset, "title": self.title,
                "active_version": self.active_version, "owners": self.owners,
                "recipients": self.recipients,
                "headline": words.headline(self.changes),
                "decisions_per_hour": self.per_hour,
                "figures": [c.to_dict() for c in self.changes],
                "dashboard": {"this_week": self.this_week, "week_before": self.week_before}}

    def event_data(self, monday: date) -> dict[str, Any]:
        """The ``report.weekly`` event's data (the webhook body's ``data``)."""
        return {"week_start": monday.isoformat(), "week_end": (monday + WEEK).isoformat(),
                "previous_week_start": (monday - WEEK).isoformat(),
                "version": self.active_version, "title": self.title, "owners": self.owners,
                "headline": words.headline(self.changes),
                "decisions_per_hour": self.per_hour,
                "figures": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class WeeklyReport:
    """The report of one week (Monday 00:00 UTC to Monday 00:00 UTC) for one or every
    ruleset."""

    week_start: date
    generated_at: datetime
    rulesets: list[RulesetReport]

    @property
    def week_end(self) -> date:
        return self.week_start + WEEK

    def text(self, base_url: str = "") -> str:
        """The report as ``rules-service report weekly`` prints it."""
        out = [words.heading(self.week_start), ""]
        if not self.rulesets:
            out.append("no rulesets")
        for entry in self.rulesets:
            out += [*entry.lines(base_url), ""]
        return "\n".join(out).rstrip("\n") + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"week": {"start": self.week_start.isoformat(),
                         "end": self.week_end.isoformat()},
                "previous_week": {"start": (self.week_start - WEEK).isoformat(),
                                  "end": self.week_start.isoformat()},
                "comparison": words.COMPARISON_NOTE,
                "generated_at": self.generated_at.isoformat(),
                "rulesets": [r.to_dict() for r in self.rulesets]}


def _monday(week: str | date | None, now: datetime) -> date:
    if week is None:
        return words.last_complete_week(now)
    try:
        return words.parse_week(week if isinstance(week, str) else week.isoformat(), now)
    except ValueError as exc:
        raise RequestInvalid([Problem("week", str(exc))]) from None


def _owners(uow: UnitOfWork, names: list[str]) -> dict[str, dict[str, dict[str, str | None]]]:
    """Each ruleset's report owners, from its active version (else its newest)."""
    out = {}
    with uow.readonly():
        for name in names:
            row = uow.rulesets.get(name)
            version = (uow.versions.active(row.id) or uow.versions.newest(row.id)
                       if row is not None else None)
            out[name] = words.owners_of(version.definition) if version is not None else {}
    return out


def weekly_report(uow_factory: Callable[[], UnitOfWork], *, week: str | date | None = None,
                  ruleset: str | None = None) -> WeeklyReport:
    """The report of a week (default: the last complete one) for one ruleset or all.

    422 naming the problem when ``week`` is no date or its week is not over; 404 unknown
    ruleset. The figures are the dashboard's, for each of the two weeks.
    """
    now = ensure_utc(uow_factory().now())
    monday = _monday(week, now)
    start, end = words.week_bounds(monday)
    this = dashboard.dashboard(uow_factory(), ruleset=ruleset, since=start, until=end)
    before = dashboard.dashboard(uow_factory(), ruleset=ruleset, since=start - WEEK,
                                 until=start)
    earlier = {e["ruleset"]: e for e in before["rulesets"]}
    names = [e["ruleset"] for e in this["rulesets"]]
    owners = _owners(uow_factory(), names)
    entries = []
    for entry in this["rulesets"]:
        name = entry["ruleset"]
        previous = earlier.get(name, {})
        entries.append(RulesetReport(
            name, entry["title"], entry["active_version"], owners.get(name, {}),
            words.compare_weeks(entry, previous), entry["decisions"]["per_hour"]
            if entry["decisions"]["count"] else None, entry, previous))
    return WeeklyReport(monday, now, entries)


def send_weekly_report(uow_factory: Callable[[], UnitOfWork], report: WeeklyReport) -> int:
    """Queues the report's ``report.weekly`` event of each ruleset (delivered by the worker
    to the event's subscriptions and by email to the ruleset's report owners); returns how
    many were queued."""
    uow = uow_factory()
    with uow:
        queued = _queue(uow, report)
        uow.commit()
    return queued


def _queue(uow: UnitOfWork, report: WeeklyReport) -> int:
    now = uow.now()
    queued = 0
    for entry in report.rulesets:
        row = uow.rulesets.get(entry.ruleset)
        if row is None:  # removed since the report was read: nobody to tell
            continue
        uow.outbox.add(EVENT, row.id, now, entry.event_data(report.week_start))
        queued += 1
    return queued


def send_scheduled_weekly_report(uow_factory: Callable[[], UnitOfWork]) -> date | None:
    """Sends the report of the last complete week when it is due (from Monday 07:00 UTC)
    and no worker has sent it yet; returns the week sent, or None."""
    uow = uow_factory()
    monday = words.scheduled_week(ensure_utc(uow.now()))
    if monday is None:
        return None
    with uow.readonly():
        if uow.weekly_reports.sent_at(monday) is not None:
            return None
    report = weekly_report(uow_factory, week=monday)
    with uow:
        # The claim and the events commit together: a racing worker's claim finds the
        # week taken (on PostgreSQL it waits for this one to commit first).
        if not uow.weekly_reports.claim(monday, uow.now(), len(report.rulesets)):
            return None
        _queue(uow, report)
        uow.commit()
    return monday


def week_reported(uow_factory: Callable[[], UnitOfWork], monday: date) -> datetime | None:
    """When the worker sent the scheduled report of the week starting ``monday``."""
    uow = uow_factory()
    with uow.readonly():
        return uow.weekly_reports.sent_at(monday)
