"""The operations figures as charts over time, per ruleset and window."""

from __future__ import annotations

from flask import render_template, request

from api.pages import charts
from api.pages.blueprint import bp
from api.services import container
from rules_service.services import governance, trends


@bp.get("/dashboard")
def dashboard() -> str:
    """Throughput, outcome mix, exception and fallback rates, latency, escalations against
    target, approval delay and hours saved, each drawn over the chosen window."""
    c = container()
    ruleset = request.args.get("ruleset") or None
    asked = request.args.get("window", "")
    window = asked if asked in trends.WINDOWS else "24h"
    whole, slices = trends.dashboard_series(c.uow, ruleset=ruleset, window=window)
    names = [s.name for s in governance.list_rulesets(c.uow())]
    figures = trends.pick(whole, ruleset)
    return render_template("dashboard.html", whole=whole, figures=figures,
                           charts=charts.dashboard_charts(slices), rulesets=names,
                           windows=list(trends.WINDOWS), chosen={"ruleset": ruleset,
                                                                 "window": window})
