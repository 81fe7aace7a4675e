"""Recorded decisions: a filtered, cursor-paginated listing and the full record."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.openapi import documented
from api.responses import dump
from api.schemas import DecisionPageSchema, DecisionSchema, DecisionsQuery
from api.services import container
from rules_service.services import decisions

bp = Blueprint("decisions", __name__, url_prefix="/v1/decisions")


@bp.get("")
@documented(query=DecisionsQuery, responses={200: DecisionPageSchema}, errors=(404,))
def list_decisions(query: dict[str, Any]) -> Response:
    """Recorded decisions, newest first; pass `next_cursor` back as `cursor` for more.

    Beside ruleset, outcome and time: `caller` (exact), `caller_prefix`, and
    `input.FIELD=value` for an input field's value.

    404 when `ruleset` names no ruleset.
    """
    found, next_cursor = decisions.list_decisions(
        container().uow(), ruleset=query["ruleset"], outcome=query["outcome"],
        since=query["since"], until=query["until"], limit=query["limit"],
        cursor=query["cursor"], caller=query["caller"], caller_prefix=query["caller_prefix"],
        inputs=query["inputs"])
    return dump(DecisionPageSchema, {"decisions": [d.to_dict(full=True) for d in found],
                                     "next_cursor": next_cursor})


@bp.get("/<decision_id>")
@documented(responses={200: DecisionSchema}, errors=(404,))
def get_decision(decision_id: str) -> Response:
    """The full record of one decision: input, version, outcome, rules, caller, timing."""
    found = decisions.get_decision(container().uow(), decision_id)
    return dump(DecisionSchema, found.to_dict(full=True))
