"""Request logs: one line per request with its id, caller, route, status, duration and
decisions; errors logged once under the same id, never shown to the client."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from api.request_log import (
    LOGGER_NAME,
    MAX_REQUEST_ID,
    REQUEST_ID_HEADER,
    SANE_REQUEST_ID,
    make_formatter,
    request_id_from,
)
from rules_service.bootstrap import Container
from rules_service.services import accounts
from tests.integration.api_fixtures import Api
from tests.integration.test_api_evaluation import BATCH, EVALUATE, activate
from tests.integration.test_pages_sign_in import PASSWORD, sign_in


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def test_each_request_is_one_line_with_caller_route_status_duration_and_decision(
        api: Api, people: dict[str, str], logs: pytest.LogCaptureFixture) -> None:
    activate(api)
    logs.clear()
    response = api.post(EVALUATE, {"input": {"amount": 40}}, who="bot",
                        headers={REQUEST_ID_HEADER: "client-id.42:a_b"})
    assert response.status_code == 200
    assert response.headers[REQUEST_ID_HEADER] == "client-id.42:a_b"
    [line] = request_lines(logs)
    assert line.request_id == "client-id.42:a_b"  # type: ignore[attr-defined]
    assert line.caller == "bot"  # type: ignore[attr-defined]
    assert line.method == "POST"  # type: ignore[attr-defined]
    assert line.route == "/v1/rulesets/<name>/evaluate"  # type: ignore[attr-defined]
    assert line.status == 200  # type: ignore[attr-defined]
    assert 0 < line.duration_ms < 10_000  # type: ignore[attr-defined]
    assert line.decision_ids == [response.get_json()["decision_id"]]  # type: ignore[attr-defined]
    # The token is never logged, in any record of the request.
    assert people["bot"] not in logs.text


def test_a_batch_logs_every_decision_id_and_a_dry_run_none(
        api: Api, logs: pytest.LogCaptureFixture) -> None:
    activate(api)
    logs.clear()
    response = api.post(BATCH, {"inputs": [{"amount": 1}, {"amount": 500}]}, who="bot")
    assert response.status_code == 200
    [line] = request_lines(logs)
    assert line.decision_ids == [  # type: ignore[attr-defined]
        d["decision_id"] for d in response.get_json()["decisions"]]
    logs.clear()
    assert api.post(EVALUATE, {"input": {"amount": 1}, "dry_run": True},
                    who="bot").status_code == 200
    [line] = request_lines(logs)
    assert not hasattr(line, "decision_ids")


@pytest.mark.parametrize("given_id", [
    "x" * (MAX_REQUEST_ID + 1),  # too long
    "two words",
    "semi;colon",
    "ünïcode",
    "",
])
def test_an_unusable_request_id_is_replaced_by_a_fresh_one(
        api: Api, given_id: str, logs: pytest.LogCaptureFixture) -> None:
    response = api.get("/v1/rulesets", headers={REQUEST_ID_HEADER: given_id})
    made = response.headers[REQUEST_ID_HEADER]
    assert made != given_id and len(made) == 32 and SANE_REQUEST_ID.fullmatch(made)
    [line] = request_lines(logs)
    assert line.request_id == made  # type: ignore[attr-defined]


def test_refused_and_unrouted_requests_are_logged_without_caller_or_raw_path(
        api: Api, logs: pytest.LogCaptureFixture) -> None:
    assert api.get("/v1/rulesets", who=None).status_code == 401
    assert api.get("/v1/no-such/secret-in-path").status_code == 404
    first, second = request_lines(logs)
    assert (first.caller, first.status) == (None, 401)  # type: ignore[attr-defined]
    assert first.route == "/v1/rulesets"  # type: ignore[attr-defined]
    assert (second.route, second.status) == (None, 404)  # type: ignore[attr-defined]
    assert second.caller == "root"  # type: ignore[attr-defined]
    assert "secret-in-path" not in logs.text
    assert first.request_id != second.request_id  # type: ignore[attr-defined]


def test_a_5xx_traceback_is_logged_once_under_the_request_id_and_never_sent(
        app: Flask, api: Api, logs: pytest.LogCaptureFixture) -> None:
    def explode() -> str:
        raise RuntimeError("disk on fire")

    app.add_url_rule("/v1/explode", "explode", explode)
    response = api.get("/v1/explode", headers={REQUEST_ID_HEADER: "boom-1"})
    assert response.status_code == 500
    assert response.headers[REQUEST_ID_HEADER] == "boom-1"
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "disk on fire" not in body
    with_traceback = [r for r in logs.records if r.exc_info]
    assert len(with_traceback) == 1
    assert with_traceback[0].request_id == "boom-1"  # type: ignore[attr-defined]
    [line] = request_lines(logs)
    assert (line.status, line.request_id) == (500, "boom-1")  # type: ignore[attr-defined]


def test_the_json_format_is_one_parsable_line_per_record_with_the_traceback_inside() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter("json"))
    logger = logging.getLogger("tests.request_log.json")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("GET /healthz 200", extra={"status": 200, "route": "/healthz"})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["status"] == 200 and first["level"] == "INFO" and first["time"].endswith(
        "+00:00")
    assert "ValueError: bad" in second["exc_info"] and second["level"] == "ERROR"


@given(st.text(max_size=200))
def test_a_request_id_is_always_sane_and_a_sane_one_is_kept(header: str) -> None:
    made = request_id_from(header)
    assert SANE_REQUEST_ID.fullmatch(made)
    assert (made == header) == bool(SANE_REQUEST_ID.fullmatch(header))


def test_a_person_on_the_pages_is_logged_by_name(app: Flask, api: Api, container: Container,
                                                  logs: pytest.LogCaptureFixture) -> None:
    accounts.set_password(container.uow(), "biz", PASSWORD)
    client = app.test_client()
    assert sign_in(client, "biz").status_code == 303
    logs.clear()
    assert client.get("/").status_code == 200
    [line] = request_lines(logs)
    assert (line.caller, line.route) == ("biz", "/")  # type: ignore[attr-defined]


PHASES_OF_EVALUATE = {"auth", "body", "validate", "engine", "record", "response"}


def test_the_line_of_an_evaluation_times_each_phase_within_its_duration(
        api: Api, logs: pytest.LogCaptureFixture) -> None:
    activate(api)
    logs.clear()
    assert api.post(EVALUATE, {"input": {"amount": 40}}, who="bot").status_code == 200
    [line] = request_lines(logs)
    phases = line.phases_ms  # type: ignore[attr-defined]
    assert set(phases) == PHASES_OF_EVALUATE
    assert all(ms >= 0 for ms in phases.values())
    assert sum(phases.values()) <= line.duration_ms + 0.01  # type: ignore[attr-defined]
    logs.clear()
    assert api.post(EVALUATE, {"input": {"amount": "x"}}, who="bot").status_code == 422
    [line] = request_lines(logs)  # refused while validating: no engine, nothing recorded
    assert set(line.phases_ms) == {"auth", "body", "validate"}  # type: ignore[attr-defined]


def _samples(api: Api, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = api.get("/metrics", who="bot")
    assert response.status_code == 200
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples if s.name == name}


def test_metrics_count_requests_by_route_and_status_class_and_phases_by_route(
        api: Api) -> None:
    activate(api)
    for amount in (1, 2, 3):
        assert api.post(EVALUATE, {"input": {"amount": amount}}, who="bot").status_code == 200
    assert api.post(EVALUATE, {"input": {"amount": "x"}}, who="bot").status_code == 422
    requests = _samples(api, "rules_service_http_request_duration_seconds_count")
    route = ("route", "/v1/rulesets/<name>/evaluate")
    assert requests[(("method", "POST"), route, ("status_class", "2xx"))] == 3
    assert requests[(("method", "POST"), route, ("status_class", "4xx"))] == 1
    phases = _samples(api, "rules_service_request_phase_seconds_count")
    assert phases[(("phase", "engine"), route)] == 3
    assert phases[(("phase", "validate"), route)] == 4
    buckets = _samples(api, "rules_service_http_request_duration_seconds_bucket")
    assert buckets[(("le", "+Inf"), ("method", "POST"), route, ("status_class", "2xx"))] == 3
