"""The pages' blueprint: session cookie, CSRF, the signed-in person, and error pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sansio.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from api.requests import refuse_unstorable
from api.services import container
from rules_service.domain.errors import DomainError
from rules_service.services import accounts, inbox

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/pages-static")
csrf = CSRFProtect()

SESSION_KEY = "principal"
SESSION_METHOD_KEY = "signed_in_with"
SESSION_LIFETIME = timedelta(hours=12)
# Reached without a session: the sign-in page itself and the stylesheet it uses.
PUBLIC_ENDPOINTS = frozenset({"pages.sign_in", "pages.sign_in_post", "pages.static",
                              "pages.favicon"})
HELPER_PREFIX = "/pages-api/"
SECURITY_HEADERS = {
    # Only this site's own stylesheet, script and images (charts are inline SVG markup);
    # no inline script or style attribute, no framing by another site, forms post here.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
"""Sent with every page and every page helper's answer."""


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure exactly when the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request.is_secure) or bool(app.config.get("SESSION_COOKIE_SECURE"))


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="rules_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # CSRF is checked by the pages' own hook below, so the bearer-token API is untouched.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)


def start_session(name: str, method: str) -> None:
    """Signs ``name`` in: a fresh session (no fixation), kept for 12 hours.

    Every way in ends here; an OIDC callback would call it with method ``"oidc"``.
    """
    session.clear()
    # Flask-WTF caches the request's CSRF token on g: drop it with the old session's token.
    g.pop("csrf_token", None)
    session.permanent = True
    session[SESSION_KEY] = name
    session[SESSION_METHOD_KEY] = method


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.index")


def signed_in_person() -> accounts.SignedIn | None:
    """The person this request's session belongs to, checked again now (revoked or unknown:
    None, and the session forgets them)."""
    name = session.get(SESSION_KEY)
    person = accounts.principal_for_sign_in(container().uow(), name) if name else None
    if person is None:
        session.pop(SESSION_KEY, None)
    return person


@bp.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.before_request
def _guard() -> Response | None:
    # Flask-WTF caches the CSRF token on g, which lives as long as the app context; when a
    # context outlives one request (test clients kept open), the cache must not carry over.
    g.pop("csrf_token", None)
    if request.method == "POST":
        csrf.protect()
    refuse_unstorable({"path": request.path, **request.args.to_dict(), **request.form.to_dict()})
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    person = signed_in_person()
    if person is None:
        if request.path.startswith(HELPER_PREFIX):
            response = jsonify({"error": {"code": "unauthenticated",
                                          "message": "sign in again", "details": []}})
            response.status_code = 401
            return response
        return redirect(url_for("pages.sign_in", next=request.full_path.rstrip("?")))
    g.person = person
    return None


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The site's icon (browsers ask for it on every page)."""
    return bp.send_static_file("favicon.svg")


def page_not_found() -> Response:
    """A browser's answer for an address that names no page: a 404 page for a signed-in
    person, else a 401 page with a way to sign in."""
    person = signed_in_person()
    if person is None:
        target = url_for("pages.sign_in", next=request.full_path.rstrip("?"))
        response = Response(render_template("signed_out.html", target=target), 401,
                            mimetype="text/html")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rules-service"'
    else:
        g.person = person
        message = f"there is no page at {request.path}; check the address"
        response = Response(render_template("error.html", status=404, message=message,
                                            details=[]), 404, mimetype="text/html")
    return _security_headers(response)


def person_name() -> str:
    """The name of the signed-in person."""
    return str(g.person.name)


def my_inbox() -> inbox.Inbox | None:
    """What waits for the signed-in person, read once per request; None when nobody is
    signed in or it cannot be read now (the navigation then shows no count: an error page
    must still render while the database is away)."""
    if g.get("person") is None:
        return None
    if "inbox" not in g:
        try:
            g.inbox = inbox.inbox(container().uow(), person_name())
        except Exception:  # noqa: BLE001 - the count is never worth failing a page for
            g.inbox = None
    found: inbox.Inbox | None = g.inbox
    return found


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"person": g.get("person"), "my_inbox": my_inbox}


@bp.errorhandler(Exception)
def _error_page(exc: Exception) -> Any:
    """Errors on the pages are pages (or JSON for the editor's helpers), never tracebacks."""
    from api.errors import describe_error, error_response, handle_exception, unavailable_headers
    from rules_service.adapters.database import is_unavailable

    sign_in_again = None
    if isinstance(exc, CSRFError) and not session.get(SESSION_KEY) \
            and request.endpoint not in PUBLIC_ENDPOINTS:
        # The session is gone (signed out, or expired): its token went with it.
        status, message = 401, ("your session has ended (you signed out, or it expired), so "
                                "this form was not sent. Sign in again to go on; the propose "
                                "page keeps its draft in this browser.")
        details: list[dict[str, Any]] = []
        sign_in_again = url_for("pages.sign_in", next=_page_sent_from())
    elif isinstance(exc, CSRFError):
        status, message = 400, ("the form was refused: it did not carry this session's "
                                "security token. Reload the page and send it again.")
        details = []
    elif isinstance(exc, DomainError | HTTPException) or is_unavailable(exc):
        status, _, message, details, _ = describe_error(exc)
    else:
        return handle_exception(exc) if request.path.startswith(HELPER_PREFIX) \
            else _internal(exc)
    headers = unavailable_headers() if status == 503 else {}
    if request.path.startswith(HELPER_PREFIX):
        return error_response(status, "unauthenticated" if sign_in_again else "csrf_failed"
                              if isinstance(exc, CSRFError)
                              else describe_error(exc)[1], message, details, headers)
    return render_template("error.html", status=status, message=message, details=details,
                           sign_in_again=sign_in_again), status, headers


def _page_sent_from() -> str:
    """The page a refused form was sent from (this site's only), else the form's address."""
    parts = urlsplit(request.referrer or "")
    if parts.netloc == request.host and parts.path:
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return safe_next(request.path)


def _internal(exc: Exception) -> Any:
    from api.errors import handle_exception

    handle_exception(exc)  # logs it
    return render_template("error.html", status=500,
                           message="something went wrong on our side; it has been logged",
                           details=[]), 500
