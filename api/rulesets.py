"""Rulesets: listing, detail, diff, rollback, pause and resume, runbook and audit trail."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.auth import current_principal
from api.markdown import render_diff, render_runbook
from api.openapi import documented
from api.responses import dump
from api.schemas import (
    AuditQuery,
    AuditSchema,
    DiffQuery,
    DiffSchema,
    PauseRequest,
    ResumeRequest,
    RollbackRequest,
    RollbackSchema,
    RulesetDetailSchema,
    RulesetListSchema,
    RunbookQuery,
    RunbookSchema,
)
from api.services import container
from rules_service.services import diffs, governance
from rules_service.services import runbook as runbook_service

bp = Blueprint("rulesets", __name__, url_prefix="/v1/rulesets")


@bp.get("")
@documented(responses={200: RulesetListSchema})
def list_rulesets() -> Response:
    """List rulesets with their active and pending versions."""
    found = governance.list_rulesets(container().uow())
    return dump(RulesetListSchema, {"rulesets": [r.to_dict() for r in found]})


@bp.get("/<name>")
@documented(responses={200: RulesetDetailSchema}, errors=(404,))
def get_ruleset(name: str) -> Response:
    """Show one ruleset: owners, sign-off roles and versions."""
    return dump(RulesetDetailSchema, governance.get_ruleset(container().uow(), name).to_dict())


@bp.get("/<name>/diff")
@documented(query=DiffQuery, responses={200: DiffSchema}, errors=(404, 409),
            text_alternatives={200: "text/markdown"})
def diff(name: str, query: dict[str, Any]) -> Response:
    """What changed between two versions, and optionally how recorded decisions would change.

    `to` defaults to the newest pending version and `from` to its base version; `impact=N`
    replays the last N recorded decisions on `to` and reports the outcome changes;
    `format=markdown` gives the same as a page an approver reads.
    """
    c = container()
    result = diffs.diff_versions(c.uow(), c.evaluator, name, from_version=query["from_version"],
                                 to_version=query["to_version"], impact=query["impact"])
    if query["format"] == "markdown":
        return Response(render_diff(result.to_dict(), _base_url()),
                        mimetype="text/markdown")
    return dump(DiffSchema, result.to_dict())


@bp.post("/<name>/rollback")
@documented(body=RollbackRequest, responses={200: RollbackSchema}, errors=(403, 404, 409))
def rollback(name: str, body: dict[str, Any]) -> Response:
    """Make an earlier, once-active version active again (recorded with the reason)."""
    result = governance.rollback(container().uow(), name, to_version=body["to_version"],
                                 reason=body["reason"], actor=current_principal().name)
    return dump(RollbackSchema, result.to_dict())


@bp.post("/<name>/pause")
@documented(body=PauseRequest, responses={200: RulesetDetailSchema}, errors=(403, 404, 409))
def pause(name: str, body: dict[str, Any]) -> Response:
    """Stop automatic decisions: every decision is still recorded, but escalates to the
    approver with the reason, keeping what the rules decided (`paused_outcome`)."""
    detail = governance.pause(container().uow(), name, reason=body["reason"],
                              actor=current_principal().name)
    return dump(RulesetDetailSchema, detail.to_dict())


@bp.post("/<name>/resume")
@documented(body=ResumeRequest, body_optional=True, responses={200: RulesetDetailSchema},
            errors=(403, 404, 409))
def resume(name: str, body: dict[str, Any]) -> Response:
    """End the pause: the rules decide again."""
    detail = governance.resume(container().uow(), name, actor=current_principal().name)
    return dump(RulesetDetailSchema, detail.to_dict())


@bp.get("/<name>/runbook")
@documented(query=RunbookQuery, responses={200: RunbookSchema}, errors=(404, 409),
            text_alternatives={200: "text/markdown"})
def runbook(name: str, query: dict[str, Any]) -> Response:
    """The runbook of the active version with its live state, as JSON or Markdown.

    `live` holds the active version and since when, versions waiting for sign-off or
    their time, open and overdue escalations, the fallback rate of the last 24 hours, and
    the exact rollback call. `format=markdown` gives the page people on call read.
    """
    view = runbook_service.get_runbook(container().uow(), name)
    if query["format"] == "markdown":
        return Response(render_runbook(view, _base_url()),
                        mimetype="text/markdown")
    return dump(RunbookSchema, view.to_dict())


@bp.get("/<name>/audit")
@documented(query=AuditQuery, responses={200: AuditSchema}, errors=(404,))
def audit(name: str, query: dict[str, Any]) -> Response:
    """The ruleset's audit trail: every transition, who, when, and why."""
    events = governance.list_audit_events(container().uow(), name, version=query["version"])
    return dump(AuditSchema, {"events": [e.to_dict() for e in events]})


def _base_url() -> str:
    """Where commands in Markdown point: ``RULES_SERVICE_BASE_URL``, never the request's
    Host header; without it, the placeholder ``$BASE_URL`` for the reader to fill in."""
    return str(container().settings.base_url) or "$BASE_URL"
