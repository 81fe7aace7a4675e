"""The review page's shadow control: start (with its sample and alert) and stop."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.domain.errors import DomainError, RequestInvalid
from rules_service.services import shadow


def _number(field: str, *, percent: bool) -> object:
    """A form field as a share (a percentage divided by 100), or the text itself when it is
    no number, so the rules name it."""
    text = request.form.get(field, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return value / 100 if percent else value


@bp.post("/rulesets/<name>/versions/<version:number>/shadow")
def start_shadow(name: str, number: int) -> Response:
    """Puts the version in shadow on a percentage of live decisions."""
    sample = _number("sample_percent", percent=True)
    alert = _number("alert_percent", percent=True)
    try:
        shadow.start_shadow(container().uow(), name, number,
                            sample=sample,  # type: ignore[arg-type]  # checked by the rules
                            alert_above=alert,  # type: ignore[arg-type]
                            actor=person_name())
    except RequestInvalid as exc:
        flash("; ".join(f"{p.place}: {p.message}" for p in exc.problems), "error")
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Version {number} now runs in shadow on live decisions; its counts start "
              f"from zero", "ok")
    return redirect(url_for("pages.version", name=name, number=number, _anchor="shadow"), 303)


@bp.post("/rulesets/<name>/versions/<version:number>/shadow/stop")
def stop_shadow(name: str, number: int) -> Response:
    """Ends the version's shadow; its counts stay on the page."""
    try:
        shadow.stop_shadow(container().uow(), name, number, actor=person_name())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Version {number} no longer runs in shadow", "ok")
    return redirect(url_for("pages.version", name=name, number=number, _anchor="shadow"), 303)
