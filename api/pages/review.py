"""The review page of a version (the approver's page), its sign-off and withdrawal."""

from __future__ import annotations

from flask import Response as FlaskResponse
from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.domain.errors import DomainError
from rules_service.services import diffs, governance, review, shadow

IMPACT_REPLAY = 200
"""Recorded decisions replayed on the version under review."""

MAX_FILE_LINES = 600
"""Lines of the file's diff shown on the page; a longer one is a link to the text."""


@bp.get("/rulesets/<name>/versions/<version:number>")
def version(name: str, number: int) -> str:
    """Changes side by side, tests, impact, sign-offs, and the approve/reject form."""
    c = container()
    view = governance.get_version(c.uow(), name, number)
    diff = diffs.diff_versions(c.uow(), c.evaluator, name, to_version=number,
                               impact=IMPACT_REPLAY).to_dict()
    tests = review.version_tests(c.uow(), c.evaluator, name, number)
    eligibility = review.signoff_eligibility(c.uow(), name, number, person_name())
    collisions = review.collisions(c.uow(), name, number)
    in_shadow = shadow.find_shadow(c.uow(), name, number)
    controls = shadow.shadow_controls(c.uow(), name, number, person_name())
    return render_template("version.html", v=view, diff=diff, tests=tests,
                           eligibility=eligibility, collisions=collisions,
                           max_file_lines=MAX_FILE_LINES, shadow=in_shadow,
                           shadow_controls=controls)


@bp.get("/rulesets/<name>/versions/<version:number>/file")
def version_file(name: str, number: int) -> Response:
    """The version's file as plain text."""
    view = governance.get_version(container().uow(), name, number)
    return FlaskResponse(view.content, mimetype="text/plain")


@bp.get("/rulesets/<name>/versions/<version:number>/file.diff")
def version_file_diff(name: str, number: int) -> Response:
    """The version's file against its base's, line by line, as plain text."""
    base, diff = diffs.version_file_diff(container().uow(), name, number)
    before = f"{name} version {base}" if base is not None else "(no earlier version)"
    text = diff.as_text(before, f"{name} version {number}")
    return FlaskResponse(text, mimetype="text/plain")


@bp.post("/rulesets/<name>/versions/<version:number>/sign-off")
def sign_off(name: str, number: int) -> Response:
    """Approves or rejects the version with a comment."""
    try:
        view = governance.sign_off(container().uow(), name, number,
                                   decision=request.form.get("decision", ""),
                                   comment=request.form.get("comment", ""),
                                   actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(view.signoff_sentence(person_name()), "ok")
    return redirect(url_for("pages.version", name=name, number=number), 303)


@bp.post("/rulesets/<name>/versions/<version:number>/withdraw")
def withdraw(name: str, number: int) -> Response:
    """The author takes the version back."""
    try:
        governance.withdraw_version(container().uow(), name, number,
                                    comment=request.form.get("comment", ""),
                                    actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"You withdrew version {number}; it will not take effect", "ok")
    return redirect(url_for("pages.version", name=name, number=number), 303)
