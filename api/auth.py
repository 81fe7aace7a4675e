"""Bearer-token authentication for every route except the health check.

The API docs (``/openapi.json``, ``/docs``) take a bearer token or a signed-in person's
session (a browser cannot send a token with a page), unless the setting
RULES_SERVICE_PUBLIC_DOCS opens them to everyone.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from flask import Flask, Response, g, request, url_for
from werkzeug.wrappers import Response as WsgiResponse

from api.errors import ApiError
from api.openapi import DOCS_ENDPOINTS, DOCS_PAGE_ENDPOINT
from api.pages.blueprint import page_not_found, signed_in_person
from api.services import container
from rules_service.services.phases import phase

REALM = "rules-service"
HEALTH_ENDPOINTS = ("health.healthz", "health.readyz")
PAGES_BLUEPRINT = "pages"
API_PREFIX = "/v1/"


@dataclass(frozen=True)
class Principal:
    """Who is calling: what the views and services need to know about them."""

    name: str
    is_admin: bool
    is_automation: bool


def _unauthenticated(message: str, *, invalid: bool) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": challenge})


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header; 401 for any other scheme."""
    header = request.headers.get("Authorization")
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("the Authorization header must be 'Bearer <token>'",
                               invalid=True)
    return token.strip()


def _principal_of_token(token: str) -> Principal:
    found = container().live.principal(token)
    if found is None:
        raise _unauthenticated("the token is unknown or revoked", invalid=True)
    return Principal(found.name, found.is_admin, found.is_automation)


def _docs_refused() -> Response:
    """The docs page's answer to a browser with neither token nor session: 401, with a
    way to sign in."""
    target = url_for("pages.sign_in", next=request.full_path.rstrip("?"))
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Sign in to read the API docs</title></head><body>"
            "<p>The API docs are for signed-in people and token holders. "
            f"<a href=\"{html.escape(target)}\">Sign in</a> to read them.</p></body></html>")
    return Response(page, 401, mimetype="text/html",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})


def _authenticate_docs() -> Response | None:
    if container().settings.public_docs:
        return None
    token = bearer_token()
    if token is not None:
        g.principal = _principal_of_token(token)
        return None
    person = signed_in_person()
    if person is not None:
        g.principal = Principal(person.name, person.is_admin, is_automation=False)
        return None
    if request.endpoint == DOCS_PAGE_ENDPOINT:
        return _docs_refused()
    raise _unauthenticated("the API docs need an 'Authorization: Bearer <token>' header or "
                           "a signed-in session (RULES_SERVICE_PUBLIC_DOCS=true opens them)",
                           invalid=False)


def authenticate_request() -> WsgiResponse | None:
    """before_request hook: puts the caller on ``flask.g.principal`` or answers 401.

    The pages (blueprint ``pages``) authenticate people by their session instead; the docs
    take either (see ``_authenticate_docs``).
    """
    if request.endpoint in HEALTH_ENDPOINTS or request.blueprint == PAGES_BLUEPRINT:
        return None
    if request.endpoint in DOCS_ENDPOINTS:
        return _authenticate_docs()
    if request.url_rule is None and not request.path.startswith(API_PREFIX):
        return page_not_found()  # a mistyped address in a browser: a page, not JSON
    with phase("auth"):
        token = bearer_token()
        if token is None:
            raise _unauthenticated("this request needs an 'Authorization: Bearer <token>' "
                                   "header", invalid=False)
        g.principal = _principal_of_token(token)
    return None


def current_principal() -> Principal:
    """The authenticated caller of this request."""
    principal: Principal = g.principal
    return principal


def init_auth(app: Flask) -> None:
    """Installs the authentication hook."""
    app.before_request(authenticate_request)
