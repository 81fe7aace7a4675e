"""Shadow mode of a version: start, read, stop."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.auth import current_principal
from api.notification_schemas import NoBody
from api.openapi import documented
from api.responses import dump
from api.schemas.shadow import ShadowRequest, ShadowSchema
from api.services import container
from rules_service.services import shadow

bp = Blueprint("shadow", __name__, url_prefix="/v1/rulesets/<name>/versions")


@bp.put("/<version:number>/shadow")
@documented(body=ShadowRequest, responses={200: ShadowSchema}, errors=(403, 404, 409))
def start_shadow(name: str, number: int, body: dict[str, Any]) -> Response:
    """Run a pending or approved version in shadow: it decides a `sample` share of the
    ruleset's live decisions off the caller's path, and its counts start from zero.

    The version's author, an owner of the ruleset or an admin; `alert_above` is the
    business owner's (or an admin's). 409 for a version that is not pending or approved.
    """
    report = shadow.start_shadow(container().uow(), name, number, sample=body["sample"],
                                 alert_above=body["alert_above"],
                                 actor=current_principal().name)
    return dump(ShadowSchema, report.to_dict())


@bp.get("/<version:number>/shadow")
@documented(responses={200: ShadowSchema}, errors=(404,))
def get_shadow(name: str, number: int) -> Response:
    """The version's shadow: exact counts of the sampled decisions decided so far, by
    outcome change, with examples; 404 when the version was never in shadow."""
    report = shadow.get_shadow(container().uow(), name, number)
    return dump(ShadowSchema, report.to_dict())


@bp.delete("/<version:number>/shadow")
@documented(body=NoBody, body_optional=True, responses={204: None}, errors=(403, 404))
def stop_shadow(name: str, number: int, body: dict[str, Any]) -> Response:
    """End the version's shadow; its counts stay readable."""
    shadow.stop_shadow(container().uow(), name, number, actor=current_principal().name)
    return Response(status=204)
