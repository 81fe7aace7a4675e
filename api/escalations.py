"""Escalations: decisions waiting for a person, and their resolution."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.auth import current_principal
from api.openapi import documented
from api.responses import dump
from api.schemas import EscalationListSchema, EscalationSchema, EscalationsQuery, ResolveRequest
from api.services import container
from rules_service.services import decisions

bp = Blueprint("escalations", __name__, url_prefix="/v1/escalations")


@bp.get("")
@documented(query=EscalationsQuery, responses={200: EscalationListSchema}, errors=(404,))
def list_escalations(query: dict[str, Any]) -> Response:
    """Escalations, oldest first, each with its decision's input and deciding rules.

    Filter by status, ruleset, or `overdue=true`; 404 when `ruleset` names no ruleset.
    """
    c = container()
    found = decisions.list_escalations(c.uow(), status=query["status"],
                                       ruleset=query["ruleset"], overdue=query["overdue"])
    now = c.clock()
    return dump(EscalationListSchema, {"escalations": [e.to_dict(now) for e in found]})


@bp.post("/<escalation_id>/resolve")
@documented(body=ResolveRequest, responses={200: EscalationSchema}, errors=(403, 404, 409))
def resolve(escalation_id: str, body: dict[str, Any]) -> Response:
    """Resolve an open escalation.

    Whoever holds the role it is addressed to (`to_role`, primary or backup) of the
    deciding version may, and so may its approvers and admins.
    """
    c = container()
    view = decisions.resolve_escalation(c.uow(), escalation_id,
                                        resolution=body["resolution"], comment=body["comment"],
                                        actor=current_principal().name)
    return dump(EscalationSchema, view.to_dict(c.clock()))
