"""OpenTelemetry tracing (the ``otel`` extra): spans for requests and SQL; off by default;
the app runs unchanged without the extra."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

import pytest
from flask import Flask

from api import create_app, tracing
from rules_service.bootstrap import Container
from tests.integration.api_fixtures import Api

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


@pytest.fixture
def spans(app: Flask, container: Container) -> Iterator[InMemorySpanExporter]:
    """The app instrumented, its spans kept in memory; instrumentation removed after."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(app, container.engine, provider)
    try:
        yield exporter
    finally:
        FlaskInstrumentor().uninstrument_app(app)
        SQLAlchemyInstrumentor().uninstrument()


def test_a_request_is_a_server_span_named_by_its_route_with_its_sql_inside(
        api: Api, spans: InMemorySpanExporter) -> None:
    assert api.get("/v1/decisions?limit=5").status_code == 200
    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.kind.name == "SERVER"]
    assert server.attributes is not None
    assert server.attributes.get("http.route") == "/v1/decisions"
    sql = [s for s in finished if s.attributes and "db.system" in s.attributes
           or s.attributes and "db.system.name" in s.attributes]
    # Background threads (the live-state poll) have SQL spans of their own traces.
    inside = [s for s in sql if s.context.trace_id == server.context.trace_id]
    assert inside, [s.name for s in finished]
    assert all(s.parent is not None for s in inside)


def test_tracing_is_off_by_default(container: Container) -> None:
    app = create_app(container=container)
    assert container.settings.otel is False
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


def test_switched_on_without_the_extra_the_app_runs_unchanged_and_says_why(
        container: Container, api: Api, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A module set to None in sys.modules cannot be imported: the extra is "not installed".
    for module in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                   "opentelemetry.instrumentation.flask"):
        monkeypatch.setitem(sys.modules, module, None)
    settings = dataclasses.replace(container.settings, otel=True)
    app = Flask("probe")
    assert tracing.init_tracing(app, container.engine, settings) is False
    assert "install 'rules-service[otel]'" in caplog.text
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert api.get("/v1/rulesets").status_code == 200
