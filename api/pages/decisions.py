"""Searching recorded decisions, and the why of one decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import render_template, request, url_for

from api.pages.blueprint import bp
from api.services import container
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem
from rules_service.services import decisions, governance

PAGE = 50


def _moment(field: str) -> datetime | None:
    """A ``datetime-local`` field (taken as UTC), or None when empty."""
    text = request.args.get(field, "").strip()
    if not text:
        return None
    try:
        return ensure_utc(datetime.fromisoformat(text))
    except ValueError:
        raise RequestInvalid([Problem(field, "not a date and time in the years 1-9999")]) from None


@bp.get("/decisions", endpoint="decisions")
def decisions_page() -> str:
    """Decisions by ruleset, outcome, caller (its start), an input field's value and time,
    newest first."""
    c = container()
    args = {k: (request.args.get(k, "").strip() or None)
            for k in ("ruleset", "outcome", "caller", "field", "value")}
    inputs = {args["field"]: request.args.get("value", "").strip()} if args["field"] else None
    found, next_cursor = decisions.list_decisions(
        c.uow(), ruleset=args["ruleset"], outcome=args["outcome"], caller_prefix=args["caller"],
        inputs=inputs, since=_moment("since"), until=_moment("until"), limit=PAGE,
        cursor=request.args.get("cursor") or None)
    names = [s.name for s in governance.list_rulesets(c.uow())]
    query: dict[str, Any] = {**request.args.to_dict(), "cursor": next_cursor}
    next_url = url_for("pages.decisions", **query) if next_cursor else None
    return render_template("decisions.html", decisions=found, next_url=next_url,
                           rulesets=names, chosen={**args, "since": request.args.get("since", ""),
                                                   "until": request.args.get("until", "")})


@bp.get("/decisions/<decision_id>")
def decision(decision_id: str) -> str:
    """One decision: why, in values (each rule, its parts, what they read, which failed and
    by how much), fired and deciding rules with reasons, input, version, escalation."""
    found = decisions.get_decision(container().uow(), decision_id)
    return render_template("decision.html", d=found)
