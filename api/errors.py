"""One place that turns every failure into the JSON error envelope.

Every error leaves the API as ``{"error": {"code", "message", "details": [...]}}`` with a
stable snake_case code: domain errors carry their own code, ``DOMAIN_STATUS`` below gives
each error class its HTTP status (the domain knows no HTTP), and everything else is mapped
by ``describe_error``. Nothing ever reaches the client as an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import Flask, Response, current_app, has_request_context, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from api.markdown import render_error
from rules_service.adapters.database import is_unavailable
from rules_service.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InputInvalid,
    NotFound,
    RequestInvalid,
    RulesetInvalid,
    Unauthenticated,
)
from rules_service.domain.problems import MAX_REPORTED_PROBLEMS, Problem, more_problems, preview
from rules_service.services.accounts import SignInLocked, SignInRefused

log = logging.getLogger(__name__)

# HTTP errors raised by Flask/Werkzeug itself (routing, body size, methods): status -> code.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}

# Friendlier messages than Werkzeug's HTML-minded descriptions.
HTTP_MESSAGES: dict[int, str] = {
    404: "no such resource",
    405: "this method is not allowed on this resource",
    413: "the request body is too large",
}

# The HTTP status of every domain error, by class; a subclass answers as its nearest listed
# ancestor (e.g. every Conflict is a 409), and an unlisted error as DOMAIN_DEFAULT_STATUS.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    RulesetInvalid: 422,
    InputInvalid: 422,
    RequestInvalid: 422,
    NotFound: 404,
    Unauthenticated: 401,
    Forbidden: 403,
    Conflict: 409,
    SignInRefused: 401,
    SignInLocked: 429,
}
DOMAIN_DEFAULT_STATUS = 400


def domain_status(exc: DomainError, default: int = DOMAIN_DEFAULT_STATUS) -> int:
    """The HTTP status a domain error is answered with (``default`` when none is listed)."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return default

RETRY_AFTER_S = 5
"""What a 503 tells the client to wait before trying again (``Retry-After``, seconds)."""
DATABASE_UNAVAILABLE = "database_unavailable"


def unavailable_headers() -> dict[str, str]:
    """The headers of every 503: when to try again."""
    return {"Retry-After": str(RETRY_AFTER_S)}


class ApiError(Exception):
    """An error the HTTP layer itself raises (bad body, missing token, ...)."""

    def __init__(self, status: int, code: str, message: str,
                 details: Sequence[Mapping[str, Any]] = (),
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = [dict(d) for d in details]
        self.headers = dict(headers or {})


def problem_details(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """The ``details`` entries of a list of problems."""
    return [p.to_dict() for p in problems]


def capped_details(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_REPORTED_PROBLEMS entries, and one saying how many more there were."""
    if len(details) <= MAX_REPORTED_PROBLEMS:
        return details
    return [*details[:MAX_REPORTED_PROBLEMS],
            more_problems(len(details) - MAX_REPORTED_PROBLEMS).to_dict()]


def _place(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_details(messages: Any, path: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """Marshmallow's nested error messages flattened to one ``{place, message}`` per problem."""
    details: list[dict[str, Any]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            # Schema-level errors belong to the object that holds them.
            sub = path if key == "_schema" else (*path, key)
            details.extend(validation_details(value, sub))
    elif isinstance(messages, list | tuple):
        for item in messages:
            details.extend(validation_details(item, path))
    else:
        details.append({"place": preview(_place(path)) or "body",
                        "message": preview(str(messages), 200)})
    return details


def describe_error(exc: BaseException) -> tuple[int, str, str, list[dict[str, Any]],
                                                 dict[str, str]]:
    """(status, code, message, details, headers) for any exception: the single mapping table."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message, exc.details, exc.headers
    if is_unavailable(exc):
        # Down, unreachable, hung or locked past its timeout: nothing was done; try again.
        return (503, DATABASE_UNAVAILABLE, "the database is unavailable; nothing was done, "
                "try again shortly", [], unavailable_headers())
    if isinstance(exc, DomainError):
        status = domain_status(exc)
        problems = getattr(exc, "problems", None) or ()
        details = problem_details(problems)
        extra = getattr(exc, "details", None)
        if not details and isinstance(extra, list | tuple):
            details = [dict(d) for d in extra if isinstance(d, Mapping)]
        return status, exc.code, exc.message, details, {}
    if isinstance(exc, ValidationError):
        details = validation_details(exc.messages)
        count = len(details)
        return (422, "validation_failed",
                f"the request has {count} problem{'s' if count != 1 else ''}", details, {})
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "http_error")
        message = HTTP_MESSAGES.get(status) or exc.description or exc.name
        headers: dict[str, str] = {}
        if status == 405:
            allow = dict(exc.get_headers()).get("Allow")
            if allow:
                headers["Allow"] = allow
                message = f"{message}; allowed: {allow}"
        return status, code, message, [], headers
    return 500, "internal_error", "an unexpected error occurred; it has been logged", [], {}


def error_response(status: int, code: str, message: str,
                   details: Sequence[Mapping[str, Any]] = (),
                   headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error envelope as a Flask response."""
    response = jsonify({"error": {"code": code, "message": message,
                                  "details": [dict(d) for d in details]}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _asks_for_markdown() -> bool:
    """True when the request asked ``format=markdown`` of a route that answers Markdown
    (its ``@documented`` says so); any other route answers JSON, as its spec says."""
    if not has_request_context() or request.args.get("format") != "markdown":
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    alternatives = getattr(getattr(view, "apidoc", None), "text_alternatives", {})
    return "text/markdown" in alternatives.values()


def handle_exception(exc: Exception) -> Response:
    """Flask error handler for every exception.

    A request that asked for Markdown (``format=markdown``) gets its error as Markdown too,
    with the same status: a person reading pages should not be handed JSON.
    """
    status, code, message, details, headers = describe_error(exc)
    details = capped_details(details)
    if code == DATABASE_UNAVAILABLE:
        # One line per request, not a traceback each, while the database is away.
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    elif status >= 500:
        log.exception("unhandled error: %s", exc, exc_info=exc)
    if status < 500 and _asks_for_markdown():
        response = Response(render_error(status, code, message, details),
                            status=status, mimetype="text/markdown")
        for name, value in headers.items():
            response.headers[name] = value
        return response
    return error_response(status, code, message, details, headers)


def register_error_handlers(app: Flask) -> None:
    """Installs the handlers; Exception covers HTTPException, ValidationError and the rest."""
    app.register_error_handler(Exception, handle_exception)
