"""The escalation queue (operators and approvers) and resolving one with a comment."""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.domain.errors import DomainError
from rules_service.services import decisions, governance, inbox

SHOWN = 100
"""Most escalations on one page (the soonest due)."""
STATES = ("open", "overdue", "resolved", "all")
WHOSE = {"mine": "those I may resolve", "everyone": "everyone's"}


@bp.get("/escalations")
def escalations() -> str:
    """The queue, filtered by ruleset, role and state, soonest due first."""
    c = container()
    ruleset = request.args.get("ruleset") or None
    role = request.args.get("role") or None
    state = request.args.get("state") if request.args.get("state") in STATES else "open"
    found = decisions.list_escalations(
        c.uow(), status=None if state in ("all", "overdue") else state, ruleset=ruleset,
        overdue=state == "overdue")
    whose = request.args.get("whose") if request.args.get("whose") in WHOSE else "mine"
    roles = sorted({e.to_role for e in found})
    if role is not None:
        found = [e for e in found if e.to_role == role]
    may = inbox.who_may_resolve(c.uow(), person_name(), found)
    if whose == "mine":
        found = [e for e in found if may[e.id].mine]
    far = datetime.max.replace(tzinfo=c.clock().tzinfo)
    # What the person may resolve first, then soonest due.
    found.sort(key=lambda e: (not may[e.id].mine, e.due_at or far, e.created_at))
    shown = found[:SHOWN]
    records = {e.id: decisions.get_decision(c.uow(), e.decision_id) for e in shown}
    names = [s.name for s in governance.list_rulesets(c.uow())]
    return render_template("escalations.html", escalations=shown, total=len(found),
                           records=records, now=c.clock(), rulesets=names, roles=roles,
                           may=may, chosen={"ruleset": ruleset, "role": role,
                                            "state": state, "whose": whose})


@bp.post("/escalations/<escalation_id>/resolve")
def resolve(escalation_id: str) -> Response:
    """Resolves one escalation with approve or reject and a comment."""
    try:
        view = decisions.resolve_escalation(
            container().uow(), escalation_id, resolution=request.form.get("resolution", ""),
            comment=request.form.get("comment", ""), actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Resolved: you {view.resolution}d this {view.ruleset} decision", "ok")
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/escalations") else url_for("pages.escalations"),
                    303)
