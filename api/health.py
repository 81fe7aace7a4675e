"""Liveness and readiness: GET /healthz and GET /readyz, no token needed."""

from __future__ import annotations

from flask import Blueprint, Response

from api.errors import unavailable_headers
from api.openapi import documented
from api.responses import dump
from api.schemas import HealthSchema, ReadinessSchema
from api.services import container
from rules_service.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(responses={200: HealthSchema, 503: HealthSchema}, auth=False)
def healthz() -> Response:
    """Liveness: whether the service is up and its database answers."""
    report = health.check(container().uow())
    response = dump(HealthSchema, report.to_dict(), 200 if report.ok else 503)
    if not report.ok:
        response.headers.update(unavailable_headers())
    return response


@bp.get("/readyz")
@documented(responses={200: ReadinessSchema, 503: ReadinessSchema}, auth=False)
def readyz() -> Response:
    """Readiness: 200 only when the database answers and its schema is at this code's
    newest migration; otherwise 503 naming why (put the instance in the load balancer
    only while this answers 200)."""
    c = container()
    report = health.readiness(c.uow(), c.schema_head)
    response = dump(ReadinessSchema, report.to_dict(), 200 if report.ready else 503)
    if not report.ready:
        response.headers.update(unavailable_headers())
    return response
