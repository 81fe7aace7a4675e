"""Operations figures: the dashboard (JSON) and /metrics (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from prometheus_client.exposition import choose_encoder

from api.metrics import REGISTRY_EXTENSION, app_registry, make_registry
from api.openapi import documented
from api.ops_schemas import DashboardQuery, DashboardSchema
from api.request_log import OBSERVE_EXTENSION
from api.responses import dump
from api.services import EXTENSION, container
from rules_service.services import dashboard

bp = Blueprint("ops", __name__)


@bp.record_once
def _install_registry(state: BlueprintSetupState) -> None:
    # One registry per app, not prometheus_client's global one: tests build many apps.
    app_container = state.app.extensions[EXTENSION]
    registry, requests = make_registry(app_container.uow)
    state.app.extensions[REGISTRY_EXTENSION] = registry
    state.app.extensions[OBSERVE_EXTENSION] = requests.observe


@bp.get("/v1/dashboard")
@documented(query=DashboardQuery, responses={200: DashboardSchema}, errors=(404,))
def get_dashboard(query: dict[str, Any]) -> Response:
    """Operations figures for a window (default: the last 7 days), per ruleset and overall.

    Throughput, evaluation latency p50/p95/p99, outcome mix, exception (escalated) rate,
    fallbacks, open and overdue escalations against the runbook's response-time target,
    escalation resolution time, change approval delay, and hours saved by auto-decisions.
    """
    figures = dashboard.dashboard(container().uow(), ruleset=query["ruleset"],
                                  since=query["since"], until=query["until"])
    return dump(DashboardSchema, figures)


@bp.get("/metrics")
@documented(responses={200: "text/plain"},
            text_alternatives={200: "application/openmetrics-text"})
def metrics() -> Response:
    """Prometheus metrics, read from the database at each scrape.

    Needs a bearer token like every route: give Prometheus an automation principal's token
    (`authorization: {type: Bearer, credentials_file: ...}` in the scrape config).
    """
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(app_registry(current_app)), content_type=content_type)
