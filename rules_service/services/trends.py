"""The operations figures over time: the dashboard's figures for consecutive slices of a
window, so the pages can draw them as charts.

Each slice is one call of ``dashboard.dashboard`` (whatever it counts from, raw decisions
or rollups), so the charts and the dashboard JSON can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem
from rules_service.services import dashboard

WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
"""The windows the pages offer, by name."""
SLICES = 12


@dataclass(frozen=True)
class Slice:
    """The dashboard's figures for one slice [since, until) of the window."""

    since: datetime
    until: datetime
    figures: dict[str, Any]


def dashboard_series(uow_factory: Callable[[], UnitOfWork], *, ruleset: str | None, window: str,
                     slices: int = SLICES) -> tuple[dict[str, Any], list[Slice]]:
    """The whole window's dashboard and the same figures for ``slices`` equal slices of it.

    ``uow_factory`` gives a fresh unit of work per call. The whole-window figures are
    ``overall`` or, with ``ruleset``, that ruleset's entry; so are each slice's.
    """
    length = WINDOWS.get(window)
    if length is None:
        raise RequestInvalid([Problem("window", f"must be one of {', '.join(WINDOWS)}")])
    whole = dashboard.dashboard(uow_factory(), ruleset=ruleset, since=length)
    end = ensure_utc(datetime.fromisoformat(whole["window"]["until"]))
    step = length / slices
    out = []
    for i in range(slices):
        since = end - length + step * i
        until = end - length + step * (i + 1)
        # The last slice ends now, and "now" must include what was recorded this instant.
        last = i == slices - 1
        figures = dashboard.dashboard(uow_factory(), ruleset=ruleset,
                                      since=step if last else since,
                                      until=None if last else until)
        out.append(Slice(since, until, pick(figures, ruleset)))
    return whole, out


def pick(figures: dict[str, Any], ruleset: str | None) -> dict[str, Any]:
    """The figures of one ruleset (when named) or the overall ones."""
    if ruleset is None:
        return dict(figures["overall"])
    return next((dict(e) for e in figures["rulesets"] if e["ruleset"] == ruleset), {})
