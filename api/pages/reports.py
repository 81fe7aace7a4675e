"""The weekly report as a page: each ruleset's week beside the week before."""

from __future__ import annotations

from flask import render_template, request

from api.pages.blueprint import bp
from api.services import container
from rules_service.domain import weekly_report as words
from rules_service.services import governance, weekly_report


@bp.get("/reports/weekly")
def weekly() -> str:
    """Throughput, cycle time, exception rate, approval delay, fallback activations and
    hours saved of a week (default: the last complete one) beside the week before."""
    c = container()
    ruleset = request.args.get("ruleset") or None
    week = request.args.get("week") or None
    report = weekly_report.weekly_report(c.uow, week=week, ruleset=ruleset)
    names = [s.name for s in governance.list_rulesets(c.uow())]
    return render_template("weekly_report.html", report=report, rulesets=names,
                           chosen={"ruleset": ruleset, "week": report.week_start.isoformat()},
                           previous=(report.week_start - words.WEEK).isoformat(),
                           heading=words.heading(report.week_start),
                           owners_words=words.owners_words,
                           dashboard_path=words.dashboard_path,
                           latest=words.last_complete_week(report.generated_at).isoformat())
