"""The business owner's editor: thresholds form, YAML, check as you type, try, preview, propose.

The JSON helpers under /pages-api are session-authenticated and CSRF-checked like the forms
(the page's script sends the token in ``X-CSRFToken``); they store nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.errors import domain_status
from api.pages.blueprint import bp, person_name
from api.pages.filters import place_words
from api.services import container
from rules_service.domain.errors import DomainError, RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem
from rules_service.services import drafts, governance
from rules_service.services.views import VersionView

MAX_DRAFT_CHARS = 500_000


def _starting_point(name: str) -> tuple[str, dict[str, Any], int | None, list[VersionView]]:
    """The text, thresholds and number of the version a change starts from (the active one,
    else the newest), and the versions already open on it."""
    c = container()
    detail = governance.get_ruleset(c.uow(), name)
    number = detail.summary.active_version or detail.summary.latest_version
    if number is None:
        return "", {}, None, []
    view = governance.get_version(c.uow(), name, number)
    open_ = [v for v in detail.versions if v.status in ("pending", "approved")]
    return view.content, dict(view.definition.get("thresholds") or {}), number, open_


def _effective_at(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        return ensure_utc(datetime.fromisoformat(text))
    except ValueError:
        raise RequestInvalid([Problem("effective_at",
                                      "not a date and time in the years 1-9999")]) from None


@bp.get("/rulesets/<name>/propose")
def propose(name: str) -> str:
    """The editor, starting from the active version's file."""
    content, thresholds, base, open_ = _starting_point(name)
    return render_template("propose.html", name=name, content=content, thresholds=thresholds,
                           base=base, note="", effective_at="", error=None, problems=[],
                           open_versions=open_)


@bp.post("/rulesets/<name>/propose")
def propose_post(name: str) -> Any:
    """Proposes the edited file as a new version; problems re-show the editor."""
    content = request.form.get("content", "")
    note = request.form.get("note", "")
    effective = request.form.get("effective_at", "")
    c = container()
    try:
        view = governance.propose_version(c.uow(), c.evaluator, name, content=content,
                                          note=note, effective_at=_effective_at(effective),
                                          actor=person_name())
    except DomainError as exc:
        _, thresholds, base, open_ = _starting_point(name)
        # The form shows the values that were refused, as the file sent holds them.
        thresholds = drafts.draft_thresholds(content) or thresholds
        problems = [p.to_dict() for p in
                    drafts.lines_for(content, getattr(exc, "problems", ()) or ())]
        return render_template("propose.html", name=name, content=content,
                               thresholds=thresholds, base=base, note=note,
                               effective_at=effective, error=exc.message,
                               problems=problems, open_versions=open_
                               ), domain_status(exc, default=422)
    # ``proposed`` tells the version page to clear the draft this browser kept.
    return redirect(url_for("pages.version", name=name, number=view.version, proposed=1),
                    303)


def _draft() -> tuple[str, dict[str, Any]]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        raise RequestInvalid([Problem("content", "send {\"content\": \"...\"}")])
    if len(body["content"]) > MAX_DRAFT_CHARS:
        raise RequestInvalid([Problem("content", "the draft is too long")])
    return body["content"], body


@bp.post("/pages-api/rulesets/<name>/check")
def check_draft(name: str) -> Response:
    """Every problem of the draft with its line, and its embedded tests' results."""
    content, _ = _draft()
    answer = drafts.check_draft(container().evaluator, name, content).to_dict()
    for problem in answer["problems"]:
        problem["where"] = place_words(problem["place"], problem.get("line"))
    return jsonify(answer)


@bp.post("/pages-api/rulesets/<name>/thresholds")
def draft_thresholds(name: str) -> Response:
    """The draft with the thresholds form's values written in; a field whose value cannot
    be written keeps its old value in the file and gets a problem."""
    content, body = _draft()
    typed = body.get("values")
    if not isinstance(typed, dict) or not all(isinstance(v, str) for v in typed.values()):
        raise RequestInvalid([Problem("values", "send {\"values\": {\"name\": \"text\"}}")])
    return jsonify(drafts.set_draft_thresholds(content, typed))


@bp.post("/pages-api/rulesets/<name>/try")
def try_draft(name: str) -> Response:
    """What the draft and the active version decide for sample inputs, with their
    explanations (nothing is recorded)."""
    content, body = _draft()
    inputs = body.get("inputs")
    if isinstance(inputs, dict):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise RequestInvalid([Problem("inputs", "give an input object or a list of them")])
    c = container()
    return jsonify({"results": drafts.try_draft(c.evaluator, name, content, inputs, c.uow())})


@bp.post("/pages-api/rulesets/<name>/preview")
def preview_draft(name: str) -> Response:
    """The draft's changes against the active version and their impact on recent decisions."""
    content, _ = _draft()
    c = container()
    return jsonify(drafts.preview_draft(c.uow(), c.evaluator, name, content))
