"""Bearer-token authentication for every route except the health check and the docs."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, request

from api.errors import ApiError
from api.openapi import PUBLIC_ENDPOINTS
from api.services import container

REALM = "rules-service"
HEALTH_ENDPOINT = "health.healthz"
PAGES_BLUEPRINT = "pages"


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


def authenticate_request() -> None:
    """before_request hook: puts the caller on ``flask.g.principal`` or answers 401.

    The pages (blueprint ``pages``) authenticate people by their session instead.
    """
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint == HEALTH_ENDPOINT:
        return
    if request.blueprint == PAGES_BLUEPRINT:
        return
    token = bearer_token()
    if token is None:
        raise _unauthenticated("this request needs an 'Authorization: Bearer <token>' header",
                               invalid=False)
    found = container().live.principal(token)
    if found is None:
        raise _unauthenticated("the token is unknown or revoked", invalid=True)
    g.principal = Principal(found.name, found.is_admin, found.is_automation)


def current_principal() -> Principal:
    """The authenticated caller of this request."""
    principal: Principal = g.principal
    return principal


def init_auth(app: Flask) -> None:
    """Installs the authentication hook."""
    app.before_request(authenticate_request)
