"""Shared by every test: which database the suite runs on, throwaway databases, and the
local webhook receiver and SMTP server the notification tests talk to."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

from tests.e2e.support import free_port
from tests.integration.notify_support import WAIT_S, Mailbox, Receiver, handler

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def database_kind() -> str:
    """Which database the suite runs on: RULES_SERVICE_TEST_DATABASE, default sqlite."""
    kind = os.environ.get("RULES_SERVICE_TEST_DATABASE", "sqlite").strip().lower()
    if kind in ("postgres", "pg"):
        kind = "postgresql"
    if kind not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"RULES_SERVICE_TEST_DATABASE must be sqlite or postgresql, "
                                f"not {kind!r}")
    return kind


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips postgres_only tests when the suite runs on SQLite."""
    if database_kind() == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (RULES_SERVICE_TEST_DATABASE=postgresql)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def _admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def throwaway_database(directory: Path) -> Iterator[str]:
    """The URL of an empty database of the suite's kind, dropped afterwards.

    SQLite: a file in ``directory``. PostgreSQL: a new database on the server of
    RULES_SERVICE_TEST_POSTGRES_URL (default the local one), so parallel runs never meet.
    """
    if database_kind() == "sqlite":
        yield f"sqlite:///{directory / 'rules-service.db'}"
        return
    base = os.environ.get("RULES_SERVICE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free local port."""
    found = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(found))
    server.daemon_threads = True
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver",
                              daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port."""
    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
