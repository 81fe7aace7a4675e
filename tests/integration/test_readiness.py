"""GET /readyz: ready only when the database answers and its schema is this code's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask.testing import FlaskClient

from api import create_app
from rules_service.adapters import migrations_runner
from rules_service.bootstrap import bootstrap
from rules_service.config import Settings
from tests.conftest import throwaway_database


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's kind."""
    with throwaway_database(tmp_path) as url:
        yield url


def _get(url: str, path: str) -> tuple[int, dict, dict]:
    container = bootstrap(Settings(database_url=url))
    try:
        client: FlaskClient
        with create_app(container=container).test_client() as client:
            response = client.get(path)
            return response.status_code, response.get_json(), dict(response.headers)
    finally:
        container.close()


def test_ready_at_the_newest_migration_without_a_token(fresh_url: str) -> None:
    migrations_runner.upgrade(fresh_url)
    status, body, _ = _get(fresh_url, "/readyz")
    head = migrations_runner.head_revision(fresh_url)
    assert status == 200
    assert body == {"status": "ready", "database": "ok", "schema": head,
                    "expected_schema": head, "reason": None}


def test_not_ready_on_an_unmigrated_database_while_alive(fresh_url: str) -> None:
    status, body, headers = _get(fresh_url, "/readyz")
    assert status == 503
    assert body["schema"] is None
    assert "not migrated" in body["reason"] and "db upgrade" in body["reason"]
    assert headers["Retry-After"]


def test_not_ready_one_migration_behind_though_healthz_answers(fresh_url: str) -> None:
    migrations_runner.upgrade(fresh_url)
    head = migrations_runner.head_revision(fresh_url)
    command.downgrade(migrations_runner.alembic_config(fresh_url), "-1")
    status, body, _ = _get(fresh_url, "/readyz")
    assert status == 503
    assert body["schema"] != head and body["expected_schema"] == head
    assert f"this code needs {head}" in body["reason"]
    assert _get(fresh_url, "/healthz")[0] == 200


def test_not_ready_on_a_newer_schema(fresh_url: str) -> None:
    from sqlalchemy import text

    migrations_runner.upgrade(fresh_url)
    container = bootstrap(Settings(database_url=fresh_url))
    try:
        with container.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        container.close()
    status, body, _ = _get(fresh_url, "/readyz")
    assert status == 503
    assert body["schema"] == "9999"
    assert "newer release" in body["reason"]


def test_not_ready_when_the_database_does_not_answer(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "x.db"
    status, body, _ = _get(f"sqlite:///{missing}", "/readyz")
    assert status == 503
    assert body["database"] == "unreachable"
    assert body["reason"] == "the database does not answer"
