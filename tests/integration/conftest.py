"""Integration fixtures: a real database, migrated with the real Alembic migrations.

The database is chosen by ``RULES_SERVICE_TEST_DATABASE`` (``sqlite``, the default, or
``postgresql``). PostgreSQL gets a fresh database per test session, created from
``RULES_SERVICE_TEST_POSTGRES_URL`` (default: the local ``test`` database) and dropped
afterwards, so parallel runs never share tables. Every test starts with empty tables.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from api import create_app
from rules_service.adapters import migrations_runner
from rules_service.adapters.orm import Base
from rules_service.bootstrap import Container, bootstrap
from rules_service.config import Settings
from rules_service.engine import EnginePool
from rules_service.services import principals
from tests.conftest import throwaway_database
from tests.integration.api_fixtures import Api


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for this test session."""
    with throwaway_database(tmp_path_factory.mktemp("db")) as url:
        migrations_runner.upgrade(url)
        yield url


@dataclass
class FakeClock:
    """A clock the tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Moves time forward."""
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    """The time as the services see it."""
    return FakeClock()


def _empty_tables(container: Container) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with container.engine.begin() as conn:
        if container.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(scope="session")
def engine_pool() -> Iterator[EnginePool]:
    """The real durable-rules engine, shared by the session (its workers start once)."""
    with EnginePool(workers=2, timeout_s=10.0) as pool:
        yield pool


@pytest.fixture
def container(database_url: str, clock: FakeClock,
              engine_pool: EnginePool) -> Iterator[Container]:
    """Services wired to the test database, the real engine and the fake clock."""
    c = bootstrap(Settings(database_url=database_url, sqlite_busy_timeout_s=30.0,
                           base_url="http://localhost", webhook_allow=("127.0.0.1",)),
                  evaluator=engine_pool, clock=clock)
    _empty_tables(c)
    try:
        yield c
    finally:
        c.close()


PEOPLE = {
    "root": {"is_admin": True},
    "bot": {"is_automation": True},
    "dev": {}, "dev-backup": {},
    "biz": {}, "biz-backup": {},
    "ops": {}, "ops-backup": {},
    "appr": {}, "appr-backup": {},
    "stranger": {},
}


@pytest.fixture
def people(container: Container) -> dict[str, str]:
    """Every principal the tests act as, with their tokens."""
    tokens = {}
    for name, flags in PEOPLE.items():
        tokens[name] = principals.add_principal(container.uow(), name, **flags).token
    return tokens


BASE_DEFINITION: dict[str, Any] = {
    "name": "refunds",
    "title": "Refunds",
    "description": "Decides refunds.",
    "owners": {
        "business_owner": {"primary": "biz", "backup": "biz-backup"},
        "operations_owner": {"primary": "ops", "backup": "ops-backup"},
        "approver": {"primary": "appr", "backup": "appr-backup"},
        "maintainer": {"primary": "dev", "backup": "dev-backup"},
    },
    "signoff": ["business_owner", "approver"],
    "thresholds": {"limit": 100},
    "inputs": {"amount": {"type": "number", "required": True, "minimum": 0}},
    "rules": [
        {"id": "small", "when": "amount <= thresholds.limit", "then": "approve"},
        {"id": "huge", "when": "amount > 100000", "then": "escalate"},
    ],
    "default": "escalate",
    "fallback": "escalate",
    "tests": [{"name": "tiny refund is approved", "input": {"amount": 1},
               "expect": {"outcome": "approve", "fired": ["small"]}}],
    "runbook": {"purpose": "Refund quickly.",
                "escalation": {"path": ["appr"], "response_time_target": "4h"}},
    "impact": {"minutes_saved_per_auto_decision": 5},
}


def definition(limit: int = 100, **changes: Any) -> dict[str, Any]:
    """The test ruleset with a different limit (so a different version) and other changes."""
    out = copy.deepcopy(BASE_DEFINITION)
    out["thresholds"]["limit"] = limit
    out.update(copy.deepcopy(changes))
    return out


def write_files(directory: Path, files: dict[str, str]) -> None:
    """Writes ruleset files into a directory."""
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")


@pytest.fixture
def app(container: Container) -> Flask:
    """The Flask app over the test database and fake clock."""
    flask_app = create_app(container=container)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def api(app: Flask, people: dict[str, str]) -> Iterator[Api]:
    """Calls the app as any of the test principals (``root`` by default)."""
    with app.test_client() as client:
        yield Api(client, people)
