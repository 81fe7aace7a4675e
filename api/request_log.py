"""Request logs: one JSON line per request, with a request id that ties it to its errors.

Every request gets a request id: the caller's ``X-Request-ID`` when it is sane (1-128
letters, digits and ``.-_:``), a fresh one otherwise; it is returned in the response's
``X-Request-ID``. When the request ends, one line is logged on ``rules_service.request``::

    {"level": "INFO", "logger": "rules_service.request",
     "message": "POST /v1/rulesets/<name>/evaluate 200", "request_id": "...",
     "caller": "expense-tool", "method": "POST", "route": "/v1/rulesets/<name>/evaluate",
     "status": 200, "duration_ms": 3.1, "phases_ms": {"auth": 0.02, "body": 0.05,
     "validate": 0.01, "engine": 0.4, "record": 2.3, "response": 0.03},
     "decision_ids": ["0193..."], "time": "2026-12-01T14:32:49.697000+00:00"}

``caller`` is the principal's name (never the token), ``route`` the URL rule (not the raw
path, so the logs group by route and carry no identifiers from the path), ``decision_ids``
present when the request recorded decisions, ``phases_ms`` the wall time of each phase
the request went through (``services.phases``: auth, body, validate, engine, record,
response; the rest of ``duration_ms`` is the framework's). Every other line logged while
a request is handled (a 5xx's traceback from api/errors.py, say) carries the same
``request_id``; the client gets the error envelope only, never a traceback.

``configure_logging`` puts one stderr handler on the root logger (JSON, or plain text with
``RULES_SERVICE_LOG_FORMAT=text``, at ``RULES_SERVICE_LOG_LEVEL``) unless the host
process configured logging already. gunicorn's own access log is off
(rules_service/gunicorn_conf.py), so there is one line per request, not two.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from flask import Flask, Response, current_app, g, request

from rules_service.config import Settings
from rules_service.log_format import json_formatter
from rules_service.services import phases

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID}}}")
LOGGER_NAME = "rules_service.request"
# app.extensions key of a function observing each finished request (api/metrics.py):
# (method, route, status, seconds, {phase: seconds}).
OBSERVE_EXTENSION = "rules_service.observe_request"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

log = logging.getLogger(LOGGER_NAME)

# The id of the request this thread is handling; log records pick it up (RequestIdFilter).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is sane, a fresh one (32 hex digits) otherwise."""
    if header is not None and SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def note_decisions(ids: Iterable[str | None]) -> None:
    """Names the decisions this request recorded, for its log line."""
    g.setdefault("decision_ids", []).extend(i for i in ids if i)


def _install_request_id_on_records() -> None:
    """Every log record made while a request is handled carries its ``request_id``.

    Done where records are made (the record factory), not by a handler's filter, so it holds
    whatever handlers the host process has or adds later.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        request_id = current_request_id.get()
        if request_id is not None:
            record.request_id = request_id
        return record

    factory.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``RULES_SERVICE_LOG_FORMAT``: JSON lines (default) or plain text."""
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT, defaults={"request_id": "-"})
    # "time": ISO 8601 in UTC, as the decisions' own timestamps.
    return json_formatter()


def configure_logging(settings: Settings) -> None:
    """Logs to stderr in the configured format and level, unless logging is set up already.

    A process that configured the root logger itself (a test runner, an embedding
    application) keeps its handlers; ours is added once however many apps are created.
    """
    _install_request_id_on_records()
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(settings.log_format))
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def _caller() -> str | None:
    principal = g.get("principal") or g.get("person")
    name = getattr(principal, "name", None)
    return str(name) if name is not None else None


def _start() -> None:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_started = time.perf_counter()
    phases.begin()
    g.request_id_token = current_request_id.set(g.request_id)


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or request_id_from(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_s = time.perf_counter() - started if started else None
    route = request.url_rule.rule if request.url_rule is not None else None
    timings = phases.current()
    fields: dict[str, Any] = {  # request_id comes with every record (see above)
        "caller": _caller(),
        "method": request.method,
        "route": route,
        "status": response.status_code,
        "duration_ms": round(duration_s * 1000, 3) if duration_s is not None else None,
    }
    if timings:
        fields["phases_ms"] = {name: round(s * 1000, 3) for name, s in timings.items()}
    observe = current_app.extensions.get(OBSERVE_EXTENSION)
    if observe is not None and duration_s is not None:
        observe(request.method, route, response.status_code, duration_s, timings)
    if current_request_id.get() is None:  # _start never ran (a hook before it failed)
        fields["request_id"] = request_id
    decisions = g.get("decision_ids")
    if decisions:
        fields["decision_ids"] = decisions
    # No raw path even here: it may carry anything the caller typed.
    log.info("%s %s %s", fields["method"], fields["route"] or "-", fields["status"],
             extra=fields)
    return response


def _forget(_exc: BaseException | None) -> None:
    phases.end()
    token = g.pop("request_id_token", None)
    if token is not None:
        current_request_id.reset(token)


def init_request_log(app: Flask, settings: Settings) -> None:
    """Logging configured, and the hooks that give each request its id and its log line.

    Registered before every other hook, so even a request refused by authentication gets
    its id, its line and its header.
    """
    configure_logging(settings)
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.teardown_request(_forget)
