"""The rulesets list and one ruleset's page (versions, owners, runbook, audit, rollback)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.domain.errors import Conflict, DomainError
from rules_service.domain.lifecycle import MAX_VERSION_NUMBER
from rules_service.services import governance, inbox
from rules_service.services import runbook as runbooks


@bp.get("/")
def index() -> str:
    """Every ruleset: active, pending (with missing sign-offs) and scheduled versions."""
    c = container()
    rows = [governance.get_ruleset(c.uow(), s.name) for s in governance.list_rulesets(c.uow())]
    g.inbox = inbox.inbox(c.uow(), person_name())  # the navigation's count reads it too
    return render_template("index.html", rulesets=rows, waiting=g.inbox)


@bp.get("/rulesets/<name>")
def ruleset(name: str) -> str:
    """One ruleset: versions, owners with backups, runbook with live state, audit trail."""
    c = container()
    detail = governance.get_ruleset(c.uow(), name)
    try:
        runbook: dict[str, Any] | None = runbooks.get_runbook(c.uow(), name).to_dict()
    except Conflict:
        runbook = None  # no active version yet: nothing is run
    events = governance.list_audit_events(c.uow(), name)
    return render_template("ruleset.html", detail=detail, runbook=runbook,
                           events=list(reversed(events)))


@bp.post("/rulesets/<name>/rollback")
def rollback(name: str) -> Response:
    """Makes an earlier version active again, with a reason."""
    try:
        to_version = int(request.form.get("to_version", ""))
    except ValueError:
        to_version = 0
    if not 1 <= to_version <= MAX_VERSION_NUMBER:
        flash("choose the version to roll back to", "error")
        return redirect(url_for("pages.ruleset", name=name), 303)
    try:
        done = governance.rollback(container().uow(), name, to_version=to_version,
                                   reason=request.form.get("reason", ""), actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"version {done.active_version} is active again", "ok")
    return redirect(url_for("pages.ruleset", name=name), 303)
