"""A database that is down, unreachable or locked past its timeout: every route answers 503
in the error shape with Retry-After (never a 500), the pages show a readable 503 page, and
a decision whose request gave up waiting is never recorded afterwards."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from api import create_app
from api.pages.blueprint import SESSION_KEY
from rules_service.adapters.database import is_unavailable
from rules_service.adapters.decision_log import GroupCommitWriter
from rules_service.bootstrap import Container, bootstrap
from rules_service.config import Settings
from rules_service.engine import EnginePool
from tests.e2e.support import free_port
from tests.integration.api_fixtures import Api, error_of
from tests.integration.test_api_evaluation import EVALUATE, activate
from tests.integration.test_hot_path import _record, write_lock_held

NOT_THE_DATABASE = {"/openapi.json", "/docs"}
"""Routes that answer without asking the database."""


@pytest.fixture
def down_app(engine_pool: EnginePool) -> Iterator[Flask]:
    """The app on a PostgreSQL address where nothing listens (a database that is down)."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/down"
    c = bootstrap(Settings(database_url=url, database_connect_timeout_s=2.0),
                  evaluator=engine_pool)
    app = create_app(container=c)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    try:
        yield app
    finally:
        c.close()


def _routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = re.sub(r"<(?:int:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x",
                      rule.rule)
        out.extend((method, path) for method in sorted(rule.methods or ())
                   if method not in ("HEAD", "OPTIONS"))
    return out


def test_every_route_answers_503_with_retry_after_when_the_database_is_down(
        down_app: Flask) -> None:
    routes = _routes(down_app)
    assert len(routes) > 30
    unavailable = []
    with down_app.test_client() as client:
        for method, path in routes:
            headers = {"Authorization": "Bearer some-token", "Idempotency-Key": "k-1"}
            with client.open(path, method=method, headers=headers, json={}) as response:
                assert response.status_code != 500, (method, path, response.data[:300])
                if response.status_code != 503:
                    continue
                unavailable.append((method, path))
                assert response.headers["Retry-After"] == "5", (method, path)
                if path.startswith("/v1/"):
                    assert error_of(response)["code"] == "database_unavailable"
    api_routes = [(m, p) for m, p in routes if p.startswith("/v1/")]
    assert api_routes and all(r in unavailable for r in api_routes), \
        set(api_routes) - set(unavailable)
    assert ("GET", "/healthz") in unavailable


def test_a_signed_in_page_shows_a_readable_503_page(down_app: Flask) -> None:
    with down_app.test_client() as client:
        with client.session_transaction() as session:
            session[SESSION_KEY] = "someone"
        for path in ("/", "/escalations", "/decisions"):
            with client.get(path) as response:
                assert response.status_code == 503, (path, response.data[:300])
                assert response.mimetype == "text/html"
                assert response.headers["Retry-After"] == "5"
                page = response.get_data(as_text=True)
                assert "Unavailable for a moment" in page and "Traceback" not in page


@pytest.fixture
def short_waiting_writer(container: Container) -> Iterator[None]:
    """The container's decisions recorded by a writer whose requests give up after 1 s."""
    container.decision_store.close()
    container.decision_store = GroupCommitWriter(container.engine, wait_s=1.0)
    yield


def _decision_count(container: Container) -> int:
    with container.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM decisions")).scalar_one())


@pytest.mark.usefixtures("short_waiting_writer")
def test_a_decision_whose_request_gave_up_is_never_recorded_and_its_retry_records_one(
        api: Api, container: Container) -> None:
    activate(api)
    body = {"input": {"amount": 5}}
    assert api.post(EVALUATE, body, who="bot").status_code == 200
    with write_lock_held(container):
        started = time.monotonic()
        refused = api.post(EVALUATE, body, who="bot", headers={"Idempotency-Key": "late"})
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.get_json()
        assert error_of(refused)["code"] == "database_unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert waited < 3.0
        time.sleep(0.5)
    # The writer got the lock after its request had left: it must not commit it now.
    assert api.post(EVALUATE, body, who="bot").status_code == 200
    assert _decision_count(container) == 2
    first = api.post(EVALUATE, body, who="bot", headers={"Idempotency-Key": "late"})
    again = api.post(EVALUATE, body, who="bot", headers={"Idempotency-Key": "late"})
    assert first.status_code == again.status_code == 200
    assert first.get_json()["decision_id"] == again.get_json()["decision_id"]
    assert _decision_count(container) == 3


@pytest.fixture
def impatient_sqlite(database_url: str, engine_pool: EnginePool,
                     container: Container) -> Iterator[Container]:
    """A second container on the same database whose SQLite busy timeout is 0.3 s."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite busy timeout")
    c = bootstrap(Settings(database_url=database_url, sqlite_busy_timeout_s=0.3),
                  evaluator=engine_pool)
    try:
        yield c
    finally:
        c.close()


def test_sqlite_locked_past_its_busy_timeout_is_503_then_recovers(
        api: Api, container: Container, impatient_sqlite: Container) -> None:
    activate(api)
    app = create_app(container=impatient_sqlite)
    with app.test_client() as client:
        other = Api(client, api.tokens)
        body = {"input": {"amount": 5}}
        assert other.post(EVALUATE, body, who="bot").status_code == 200
        with write_lock_held(container):
            locked = other.post(EVALUATE, body, who="bot")
            assert locked.status_code == 503, locked.get_json()
            assert error_of(locked)["code"] == "database_unavailable"
            assert locked.headers["Retry-After"] == "5"
        assert other.post(EVALUATE, body, who="bot").status_code == 200


def test_a_group_of_waiting_requests_fails_at_once_when_the_database_does_not_answer(
        engine_pool: EnginePool) -> None:
    """A database host that accepts TCP but never answers: the connect times out, and every
    request of the group gets the outage at once (not one connect timeout after another)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # never accepted: the kernel completes the handshake, no one speaks
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/silent"
        c = bootstrap(Settings(database_url=url, database_connect_timeout_s=2.0),
                      evaluator=engine_pool)
        try:
            errors: list[Any] = []
            records = [_record(c, 1, i) for i in range(8)]

            def write(i: int) -> None:
                try:
                    c.decision_store.write([records[i]])
                except Exception as exc:  # counted below
                    errors.append(exc)

            started = time.monotonic()
            threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(errors) == 8
            assert time.monotonic() - started < 6.0
            assert all(is_unavailable(e) for e in errors)
        finally:
            c.close()


@pytest.mark.postgres_only
def test_a_statement_past_the_statement_timeout_is_cancelled_and_unavailable(
        database_url: str, engine_pool: EnginePool) -> None:
    c = bootstrap(Settings(database_url=database_url, database_statement_timeout_s=1.0),
                  evaluator=engine_pool)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as raised, c.engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3.0
        assert "statement timeout" in str(raised.value)
        assert is_unavailable(raised.value)
    finally:
        c.close()


def test_timeouts_are_settings_with_checked_values() -> None:
    from rules_service.config import SettingsError

    settings = Settings.from_env({"RULES_SERVICE_DATABASE_CONNECT_TIMEOUT": "3",
                                  "RULES_SERVICE_DATABASE_STATEMENT_TIMEOUT": "0",
                                  "RULES_SERVICE_DATABASE_POOL_TIMEOUT": "1.5",
                                  "RULES_SERVICE_DATABASE_KEEPALIVE": "7"})
    assert (settings.database_connect_timeout_s, settings.database_statement_timeout_s,
            settings.database_pool_timeout_s, settings.database_keepalive_s) == (3, 0, 1.5, 7)
    for name, bad in (("RULES_SERVICE_DATABASE_CONNECT_TIMEOUT", "0"),
                      ("RULES_SERVICE_DATABASE_STATEMENT_TIMEOUT", "-1"),
                      ("RULES_SERVICE_DATABASE_POOL_TIMEOUT", "soon"),
                      ("RULES_SERVICE_DATABASE_KEEPALIVE", "1.5")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: bad})


def test_requests_waiting_for_one_failed_reload_share_its_failure(
        engine_pool: EnginePool) -> None:
    """A server started while its database does not answer: concurrent requests that all
    need the live state fail together after one connect timeout, not one after another."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/silent"
        c = bootstrap(Settings(database_url=url, database_connect_timeout_s=2.0),
                      evaluator=engine_pool)
        try:
            took: list[float] = []
            errors: list[BaseException] = []

            def authenticate() -> None:
                started = time.monotonic()
                try:
                    c.live.principal("some-token")
                except Exception as exc:  # counted below
                    errors.append(exc)
                took.append(time.monotonic() - started)

            threads = [threading.Thread(target=authenticate) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(errors) == 4 and all(is_unavailable(e) for e in errors)
            assert max(took) < 3.5, took
        finally:
            c.close()
