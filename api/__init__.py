"""The HTTP API: ``create_app`` builds a Flask app over the service layer.

``api`` is a top-level package beside ``rules_service`` on purpose: it is one client of the
service layer (the ``rules-service`` command is another), the only code that imports Flask,
and its place is fixed by the deployed layout (gunicorn and the tests load
``api:create_app``). The import contracts in pyproject.toml keep it on top of the layers.

Nothing is built at import time. Blueprints are listed in ``BLUEPRINT_MODULES`` (each
module exposes ``bp``); add a module there to add a resource.
"""

from __future__ import annotations

import atexit
import importlib
import secrets
import threading
from typing import Any

from flask import Flask

from api.auth import init_auth
from api.errors import register_error_handlers
from api.request_log import init_request_log
from api.requests import URL_CONVERTERS, BoundedRequest
from api.services import EXTENSION
from api.tracing import init_tracing
from rules_service.config import Settings

MAX_CONTENT_LENGTH = 5 * 1024 * 1024
"""Largest request body accepted (5 MiB); larger ones get 413."""

BLUEPRINT_MODULES: tuple[str, ...] = (
    "api.health",
    "api.openapi",
    "api.rulesets",
    "api.versions",
    "api.shadow",
    "api.evaluation",
    "api.decisions",
    "api.escalations",
    "api.me",
    "api.ops",
    "api.reports",
    "api.subscriptions",
    "api.deliveries",
    "api.seals",
    "api.pages",
)
"""Modules whose ``bp`` blueprint is registered, in this order."""


def create_app(settings: Settings | None = None, container: Any | None = None) -> Flask:
    """The application: settings from the environment unless given; a container built from
    them unless given (the app then closes it at exit)."""
    if settings is None:
        settings = container.settings if container is not None else Settings.from_env()
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.url_map.converters.update(URL_CONVERTERS)
    app.config.update(
        # Signs the pages' session cookies; settings built in code may leave it empty.
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        # Behind a TLS-terminating proxy the app sees http: the setting marks cookies Secure.
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        RULES_SERVICE_SETTINGS=settings,
    )
    # Responses keep the order the schemas give their fields.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if container is None:
        from rules_service.bootstrap import bootstrap

        container = bootstrap(settings)
        atexit.register(container.close)
        # Start the engine's workers in the background: the first request should not wait.
        warm_up = getattr(container.evaluator, "warm_up", None)
        if callable(warm_up):
            threading.Thread(target=warm_up, name="engine-warm-up", daemon=True).start()
    app.extensions[EXTENSION] = container
    # Count recorded decisions into the figures' rollups in the background (each API
    # process folds; one at a time across processes).
    folder = getattr(container, "rollup_folder", None)
    if folder is not None:
        folder.start()
    register_error_handlers(app)
    init_request_log(app, settings)
    init_auth(app)
    for name in BLUEPRINT_MODULES:
        app.register_blueprint(importlib.import_module(name).bp)
    init_tracing(app, getattr(container, "engine", None), settings)
    return app
