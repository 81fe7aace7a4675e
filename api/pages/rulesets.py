"""The rulesets list and one ruleset's page (versions, owners, runbook, audit, rollback,
pause and resume)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.domain.errors import Conflict, DomainError
from rules_service.domain.lifecycle import MAX_VERSION_NUMBER
from rules_service.services import governance, inbox, rollbacks
from rules_service.services import runbook as runbooks


@bp.get("/")
def index() -> str:
    """Every ruleset: active, pending (with missing sign-offs) and scheduled versions."""
    c = container()
    rows = [governance.get_ruleset(c.uow(), s.name) for s in governance.list_rulesets(c.uow())]
    g.inbox = inbox.inbox(c.uow(), person_name())  # the navigation's count reads it too
    return render_template("index.html", rulesets=rows, waiting=g.inbox, now=c.clock())


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
    offer = rollbacks.offer(c.uow(), name, person_name())
    return render_template("ruleset.html", detail=detail, runbook=runbook,
                           events=list(reversed(events)), offer=offer,
                           rolled_back=rollbacks.rolled_back(events),
                           may_pause=governance.may_pause(c.uow(), name, person_name()),
                           now=c.clock())


def _chosen_version() -> int | None:
    try:
        number = int(request.values.get("to_version", ""))
    except ValueError:
        return None
    return number if 1 <= number <= MAX_VERSION_NUMBER else None


@bp.get("/rulesets/<name>/rollback")
def rollback_preview(name: str) -> str | Response:
    """What rolling back to the chosen version would change, and the form that confirms it
    (403 for whoever may not roll back)."""
    to_version = _chosen_version()
    if to_version is None:
        flash("Choose the version to roll back to", "error")
        return redirect(url_for("pages.ruleset", name=name), 303)
    c = container()
    change = rollbacks.preview(c.uow(), c.evaluator, name, to_version, person_name())
    return render_template("rollback.html", preview=change,
                           reason=request.args.get("reason", ""))


@bp.post("/rulesets/<name>/rollback")
def rollback(name: str) -> Response:
    """Makes an earlier version active again, with a reason (the preview's confirmation)."""
    to_version = _chosen_version()
    if to_version is None:
        flash("Choose the version to roll back to", "error")
        return redirect(url_for("pages.ruleset", name=name), 303)
    try:
        done = governance.rollback(container().uow(), name, to_version=to_version,
                                   reason=request.form.get("reason", ""), actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Version {done.active_version} is active again; version "
              f"{done.previous_version} was rolled back", "ok")
    return redirect(url_for("pages.ruleset", name=name), 303)


@bp.post("/rulesets/<name>/pause")
def pause(name: str) -> Response:
    """Stops automatic decisions, with the reason asked for on the ruleset's page."""
    try:
        governance.pause(container().uow(), name, reason=request.form.get("reason", ""),
                         actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"{name} is paused: every decision goes to the approver until it is resumed",
              "ok")
    return redirect(url_for("pages.ruleset", name=name), 303)


@bp.post("/rulesets/<name>/resume")
def resume(name: str) -> Response:
    """Ends the pause: the rules decide again."""
    try:
        governance.resume(container().uow(), name, actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"{name} is running again: its rules decide", "ok")
    return redirect(url_for("pages.ruleset", name=name), 303)
