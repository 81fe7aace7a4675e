"""The operations figures as charts over time, per ruleset and window."""

from __future__ import annotations

from flask import render_template, request

from api.pages import charts
from api.pages.blueprint import bp
from api.services import container
from rules_service.services import governance, pause_periods, rollbacks, shadow, trends


@bp.get("/dashboard")
def dashboard() -> str:
    """Throughput, outcome mix, exception and fallback rates, latency, escalations against
    target, approval delay and hours saved, each drawn over the chosen window, with the
    moments the active version changed marked across each chart, the paused periods
    shaded, and the versions running in shadow."""
    c = container()
    ruleset = request.args.get("ruleset") or None
    asked = request.args.get("window", "")
    window = asked if asked in trends.WINDOWS else "24h"
    whole, slices = trends.dashboard_series(c.uow, ruleset=ruleset, window=window)
    names = [s.name for s in governance.list_rulesets(c.uow())]
    figures = trends.pick(whole, ruleset)
    changes = (rollbacks.changes_between(c.uow(), ruleset, slices[0].since, slices[-1].until)
               if slices else [])
    paused = (pause_periods.paused_between(c.uow(), ruleset, slices[0].since,
                                           slices[-1].until) if slices else [])
    return render_template("dashboard.html", whole=whole, figures=figures,
                           charts=charts.dashboard_charts(slices, changes, paused),
                           changes=changes, paused=paused,
                           rulesets=names,
                           in_shadow=shadow.versions_in_shadow(c.uow(), ruleset),
                           windows=list(trends.WINDOWS), chosen={"ruleset": ruleset,
                                                                 "window": window})
