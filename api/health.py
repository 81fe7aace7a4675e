"""Liveness and readiness: GET /healthz, no token needed."""

from __future__ import annotations

from flask import Blueprint, Response

from api.errors import unavailable_headers
from api.openapi import documented
from api.responses import dump
from api.schemas import HealthSchema
from api.services import container
from rules_service.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(responses={200: HealthSchema, 503: HealthSchema}, auth=False)
def healthz() -> Response:
    """Whether the service is up and its database answers."""
    report = health.check(container().uow())
    response = dump(HealthSchema, report.to_dict(), 200 if report.ok else 503)
    if not report.ok:
        response.headers.update(unavailable_headers())
    return response
