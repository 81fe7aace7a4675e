"""Signing in and out. Passwords are the first way in; see ``start_session`` for others."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, session
from werkzeug.wrappers import Response

from api.errors import domain_status
from api.pages.blueprint import bp, safe_next, start_session
from api.services import container
from rules_service.services import accounts


@bp.get("/sign-in")
def sign_in() -> Any:
    """The sign-in form."""
    return render_template("sign_in.html", next=safe_next(request.args.get("next")),
                           name="", error=None)


@bp.post("/sign-in")
def sign_in_post() -> Any:
    """Checks the name and password; on success starts a session and redirects."""
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    try:
        person = accounts.sign_in_with_password(container().uow(), name, password,
                                                request.remote_addr or "")
    except (accounts.SignInRefused, accounts.SignInLocked) as exc:
        return render_template("sign_in.html", next=target, name=name,
                               error=exc.message), domain_status(exc)
    start_session(person.name, "password")
    return redirect(target, 303)


@bp.post("/sign-out")
def sign_out() -> Response:
    """Ends the session, and has the browser drop what this site stored (a token pasted
    into /docs by an earlier version kept it in localStorage)."""
    session.clear()
    response = redirect("/sign-in", 303)
    response.headers["Clear-Site-Data"] = '"storage"'
    return response
