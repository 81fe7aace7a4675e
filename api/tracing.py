"""OpenTelemetry tracing: optional (``pip install 'rules-service[otel]'``), off by default.

``RULES_SERVICE_OTEL=1`` turns it on: a span per request (opentelemetry-instrumentation-
flask) and per SQL statement (opentelemetry-instrumentation-sqlalchemy), exported over
OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``). The standard
``OTEL_*`` variables apply as the SDK reads them (``OTEL_SERVICE_NAME``, default
``rules-service``; ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_TRACES_SAMPLER``;
``OTEL_EXPORTER_OTLP_HEADERS``). Without the extra installed the service runs unchanged and
says once, in its log, that tracing was asked for but cannot start.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from flask import Flask

from rules_service.config import Settings

SERVICE_NAME = "rules-service"

log = logging.getLogger(__name__)
_provider_lock = threading.Lock()
_process_provider: Any = None


def _otlp_provider() -> Any:
    """This process's tracer provider exporting over OTLP/HTTP, made once and made global."""
    global _process_provider
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    with _provider_lock:
        if _process_provider is None:
            attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {
                "service.name": SERVICE_NAME}
            provider = TracerProvider(resource=Resource.create(attributes))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            _process_provider = provider
        return _process_provider


def instrument(app: Flask, engine: Any, tracer_provider: Any) -> None:
    """Spans for the app's requests and the engine's statements, given to ``tracer_provider``.

    SQLAlchemy's instrumentation is once per process: a second app in the same process
    (tests) shares the first one's.
    """
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    FlaskInstrumentor().instrument_app(app, tracer_provider=tracer_provider)
    if engine is not None:
        # Its declared range stops below SQLAlchemy 2.1, which this service runs on; the
        # engine events it hooks are unchanged there (tests/integration/test_tracing.py).
        SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=tracer_provider,
                                            skip_dep_check=True)


def init_tracing(app: Flask, engine: Any, settings: Settings) -> bool:
    """Instruments the app when ``RULES_SERVICE_OTEL`` is on; True when tracing runs."""
    if not settings.otel:
        return False
    try:
        provider = _otlp_provider()
        instrument(app, engine, provider)
    except ImportError as exc:
        log.warning("RULES_SERVICE_OTEL is on but tracing cannot start (%s): install "
                    "'rules-service[otel]'; serving without traces", exc)
        return False
    return True
