"""Engine and session factory for SQLite (embedded) and PostgreSQL (production).

SQLite gets write transactions that start with ``BEGIN IMMEDIATE`` (so two writers never
both read and then fail to upgrade their lock), a busy timeout, WAL and foreign keys.
PostgreSQL relies on row locks taken by the repositories (``SELECT ... FOR UPDATE``).

A database that is down or does not answer must cost a request a bounded time, never
forever (``DatabaseTimeouts``): on PostgreSQL a connect timeout, a server-side statement
timeout, TCP keepalives and ``tcp_user_timeout``, and a client-side bound on every round
trip (a server that is stopped, not gone, keeps the TCP connection open and acknowledges
everything, so only the client can give up: the connection is then closed, which also
rolls back its open transaction); on SQLite the busy timeout. ``is_unavailable`` says
which errors mean "the database is unavailable" (the API answers them 503).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from rules_service.adapters.orm import RulesetRow

READONLY_OPTION = "rules_service_readonly"

ROUND_TRIP_GRACE_S = 1.0
"""How much longer than the statement timeout the client waits for any answer: the server
cancels a slow statement itself; the client only gives up on a server that says nothing."""

WRITE_TIMEOUT_S = 120.0
"""Longest a request waits for the commit of its decision when no statement timeout bounds
it (the database hangs); the decision log's writer and ``DatabaseTimeouts`` both use it."""

_WAIT_TIMEOUT: type[BaseException] = getattr(pg_errors, "_WaitTimeout",
                                             pg_errors.OperationalError)


DATABASE_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError,)
"""What the database layer raises when a query fails: for services that must survive it."""


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or is down: try again later (HTTP 503)."""


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long the service waits for the database; 0 for ``statement_s`` means no limit.

    ``connect_s``: opening a PostgreSQL connection. ``statement_s``: one statement (server
    side); a round trip the server does not answer within it plus ``ROUND_TRIP_GRACE_S``
    closes the connection (client side); also how long a request waits for its decision
    to be committed. ``pool_s``: waiting for a free pooled connection. ``keepalive_s``:
    TCP keepalive idle time (and interval) on PostgreSQL connections.
    """

    connect_s: float = 5.0
    statement_s: float = 10.0
    pool_s: float = 5.0
    keepalive_s: int = 10

    @property
    def round_trip_s(self) -> float | None:
        """The longest the client waits for any one answer of the server (None: forever)."""
        return self.statement_s + ROUND_TRIP_GRACE_S if self.statement_s > 0 else None

    @property
    def write_wait_s(self) -> float:
        """How long a request waits for the commit of its decision before it gives up."""
        return self.statement_s if self.statement_s > 0 else WRITE_TIMEOUT_S


class _BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server is bounded: past
    ``round_trip_s`` the connection is closed (the server rolls its transaction back when
    it sees the socket closed) and OperationalError raised."""

    round_trip_s: float | None = None

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        limit = self.round_trip_s
        if limit is None or kwargs.get("timeout") is not None or len(args) > 1:
            return super().wait(gen, *args, **kwargs)  # the caller bounds it itself
        kwargs["timeout"] = limit
        try:
            return super().wait(gen, *args, **kwargs)
        except _WAIT_TIMEOUT:
            self.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {limit:g} s; the connection was "
                f"closed") from None


def is_unavailable(exc: BaseException) -> bool:
    """Whether the error means the database is down, unreachable, hung or locked past its
    timeout (a retry later may succeed), rather than a mistake in a request or the code.

    Connection-level and timeout errors of SQLAlchemy (OperationalError, which wraps
    psycopg's and sqlite3's, DisconnectionError, the pool's TimeoutError, any error that
    invalidated its connection), psycopg's OperationalError (connection lost, statement
    timeout, lock timeout, deadlock, shutdown), sqlite3's when the database is locked past
    the busy timeout or cannot be read or written (not an SQL mistake), and
    ``DatabaseUnavailable``; also when one of these is the explicit cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError):
            return _sqlite_unavailable(current)
        if isinstance(current, sa_exc.OperationalError) \
                and isinstance(current.orig, sqlite3.OperationalError):
            return _sqlite_unavailable(current.orig)
        if isinstance(current, DatabaseUnavailable | sa_exc.OperationalError
                      | sa_exc.DisconnectionError | sa_exc.TimeoutError
                      | psycopg.OperationalError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__
    return False


_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN",
                       "SQLITE_FULL", "SQLITE_NOMEM", "SQLITE_PROTOCOL")


def _sqlite_unavailable(exc: sqlite3.OperationalError) -> bool:
    """sqlite3 raises OperationalError for SQL mistakes too (SQLITE_ERROR: a syntax error,
    no such column): those are bugs (500). Locked, busy, I/O, cannot open, full: 503; and
    a database that is not migrated (no such table), as /healthz says."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    return name.startswith(_SQLITE_UNAVAILABLE) or "no such table" in str(exc)


def _postgresql_engine(url: str, timeouts: DatabaseTimeouts | None, echo: bool) -> Engine:
    if timeouts is None:
        return create_engine(url, echo=echo, pool_pre_ping=True)
    parsed = make_url(url)
    connect_args: dict[str, Any] = {
        # libpq counts whole seconds (and at least 2).
        "connect_timeout": max(2, math.ceil(timeouts.connect_s)),
        "keepalives": 1,
        "keepalives_idle": timeouts.keepalive_s,
        "keepalives_interval": timeouts.keepalive_s,
        "keepalives_count": 3,
    }
    round_trip = timeouts.round_trip_s
    if round_trip is not None:
        # Data the server's host does not even acknowledge within this: the link is gone.
        connect_args["tcp_user_timeout"] = int(round_trip * 1000)
        options = str(parsed.query.get("options") or "")
        statement_ms = int(timeouts.statement_s * 1000)
        connect_args["options"] = f"{options} -c statement_timeout={statement_ms}".strip()
    engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_timeout=timeouts.pool_s,
                           connect_args=connect_args)
    if parsed.get_driver_name() == "psycopg" and round_trip is not None:

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            connection = _BoundedConnection.connect(*cargs, **cparams)
            connection.round_trip_s = round_trip
            return connection

    return engine


def create_private_file(path: str) -> None:
    """Creates the SQLite database file readable by its owner only (0600), unless it exists.

    An empty file is a valid database; SQLite gives its -wal and -shm files the same mode.
    """
    if path.startswith("file:") or os.path.exists(path):
        return
    # Made meanwhile by another process, or not creatable: SQLite then says why on connect.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_engine(url: str, *, sqlite_busy_timeout_s: float = 30.0, echo: bool = False,
                timeouts: DatabaseTimeouts | None = None) -> Engine:
    """An engine for the URL, with the SQLite transaction discipline set up when needed.

    ``timeouts`` bound every wait for the database (the service passes its settings);
    without them (migrations, maintenance commands) only SQLite's busy timeout applies.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _postgresql_engine(url, timeouts, echo)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(parsed)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False,
                                               "timeout": sqlite_busy_timeout_s}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    elif timeouts is not None:
        kwargs["pool_timeout"] = timeouts.pool_s
    if not in_memory:
        create_private_file(database)
    engine = create_engine(url, echo=echo, **kwargs)
    busy_ms = int(sqlite_busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get(READONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Sessions bound to the engine; ``readonly`` ones take no write lock on SQLite."""
    bind = engine.execution_options(**{READONLY_OPTION: True}) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)


class HealthProbe:
    """Whether the database answers and is migrated, in the unit of work's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def check(self) -> None:
        """Counts the rulesets: raises when the database is unreachable or not migrated
        (a real table is read, so a missing migration shows)."""
        self.session.scalar(select(func.count()).select_from(RulesetRow))

    def schema_revision(self) -> str | None:
        """The Alembic revision the schema is at (None: never migrated); raises when the
        database does not answer."""
        connection = self.session.connection()
        if not inspect(connection).has_table("alembic_version"):
            return None
        value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)


class WriterTurn:
    """On an SQLite file, the writers of every process (the decision log's writer, the
    rollup fold) take turns through a blocking lock on a file beside the database: a
    waiter wakes the moment the lock is free. SQLite's own busy handler sleeps and retries,
    so with two processes writing all the time one of them can miss the lock again and
    again (seconds at p99). Other databases need no turn: entering it does nothing.

    Each instance holds its own open file, so two threads of one process with an instance
    each exclude one another too; one instance serves one thread.
    """

    def __init__(self, engine: Engine) -> None:
        self._path = _sqlite_turn_path(engine)
        self._file: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        if self._file is None:
            self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        """Closes the lock file (a later turn opens it again)."""
        file, self._file = self._file, None
        if file is not None:
            os.close(file)


def _sqlite_turn_path(engine: Engine) -> str | None:
    """Where an SQLite database file's writers take turns; None for other databases."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(engine.url):
        return None
    return f"{database}-writer.lock"
