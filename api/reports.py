"""The weekly report (JSON), for automations; people read it at /reports/weekly."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.openapi import documented
from api.report_schemas import WeeklyReportQuery, WeeklyReportSchema
from api.responses import dump
from api.services import container
from rules_service.services import weekly_report

bp = Blueprint("reports", __name__)


@bp.get("/v1/reports/weekly")
@documented(query=WeeklyReportQuery, responses={200: WeeklyReportSchema}, errors=(404, 422))
def get_weekly_report(query: dict[str, Any]) -> Response:
    """Each ruleset's figures of a week (default: the last complete one) beside the week
    before, with the direction of each change in words.

    The figures are the dashboard's for the same weeks (throughput, cycle time, exception
    rate, change approval delay, fallback activations, hours saved).
    """
    report = weekly_report.weekly_report(container().uow, week=query["week"],
                                         ruleset=query["ruleset"])
    return dump(WeeklyReportSchema, report.to_dict())
