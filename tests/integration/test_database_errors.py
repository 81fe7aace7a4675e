"""Which database errors mean "unavailable, try again" (503) and which are bugs (500),
with errors raised by the real drivers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from rules_service.adapters.database import DatabaseUnavailable, is_unavailable, make_engine
from tests.e2e.support import free_port


def _raised(engine_url: str, sql: str) -> BaseException:
    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    except Exception as exc:  # the error is what is tested
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no error")


def test_sqlite_locked_past_its_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        engine = make_engine(f"sqlite:///{path}", sqlite_busy_timeout_s=0.1)
        with pytest.raises(sa_exc.OperationalError) as raised, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        engine.dispose()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in str(raised.value)
    assert is_unavailable(raised.value)


def test_sqlite_sql_mistakes_are_not_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert not is_unavailable(_raised(url, "SELEC 1"))
    assert not is_unavailable(_raised(url, "SELECT nope FROM sqlite_master"))
    assert is_unavailable(_raised(url, "SELECT * FROM not_migrated"))


def test_a_postgresql_server_that_is_not_there_is_unavailable() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    error = _raised(url, "SELECT 1")
    assert isinstance(error, sa_exc.OperationalError) and is_unavailable(error)
    assert is_unavailable(error.orig)  # psycopg's own


def test_a_pool_with_no_free_connection_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", poolclass=QueuePool,
                           pool_size=1, max_overflow=0, pool_timeout=0.1)
    with engine.connect(), pytest.raises(sa_exc.TimeoutError) as raised:
        engine.connect()
    engine.dispose()
    assert is_unavailable(raised.value)


def test_other_errors_are_not_unavailable_unless_caused_by_an_outage() -> None:
    assert not is_unavailable(ValueError("x"))
    assert not is_unavailable(sa_exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert is_unavailable(DatabaseUnavailable("gone"))
    try:
        try:
            raise DatabaseUnavailable("gone")
        except DatabaseUnavailable as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)
