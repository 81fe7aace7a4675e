"""The demo's mail folder (``/mail``): the email the worker wrote instead of sending, so a
newcomer sees a notice arrive. Only a server given ``RULES_SERVICE_MAIL_DIR`` (the demo)
has the page; any other answers 404."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from api.pages.blueprint import bp, person_name
from api.services import container
from rules_service.services import demo_mail


def _folder() -> str:
    return str(container().settings.mail_dir or "")


@bp.app_context_processor
def _mail_page() -> dict[str, Any]:
    return {"mail_page": bool(_folder())}


@bp.get("/mail")
def mail() -> str:
    """The newest messages in the demo's mail folder to the signed-in person (everyone's
    with ``?to=all``), newest first."""
    folder = _folder()
    if not folder:
        abort(404)
    everyone = request.args.get("to") == "all"
    messages = demo_mail.demo_mail(folder, to=None if everyone else person_name())
    return render_template("mail.html", messages=messages, folder=folder, everyone=everyone)
