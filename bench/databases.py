"""Throwaway databases: an SQLite file in a temporary directory, or a PostgreSQL database
created for the run and dropped afterwards; both set up through the service's own CLI."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import LOOPBACK, ROOT, RULESETS, BenchError

PG_ADMIN_DSN = os.environ.get(
    "BENCH_PG_DSN", f"host={LOOPBACK} port=5432 user=postgres dbname=postgres")
PG_URL = "postgresql+psycopg://postgres@" + LOOPBACK + ":5432/{name}"
DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Database:
    """A bench database: its SQLAlchemy URL, its kind, and the demo principals' tokens."""

    kind: str
    url: str
    tokens: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """The environment a service process needs to use it."""
        return {"RULES_SERVICE_DATABASE_URL": self.url}


def _pg_connect(timeout: int = 3) -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=timeout)


def ensure_postgres() -> None:
    """Connects to PostgreSQL, starting the local cluster once if it is down."""
    try:
        _pg_connect().close()
        return
    except psycopg.OperationalError:
        pass
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                        "start"], check=False, capture_output=True, timeout=60)
    for _ in range(30):
        try:
            _pg_connect().close()
            return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(1)
    raise BenchError(
        "PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres and could not be "
        "started (tried `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
        f"start`); start it, or set BENCH_PG_DSN. Last error: {last}")


@contextlib.contextmanager
def throwaway(kind: str, workdir: Path) -> Iterator[Database]:
    """A fresh database of ``kind`` with the demo set up (the example rulesets live,
    expense-approval v2 pending), dropped or deleted afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        yield _set_up(kind, url, workdir)
        return
    ensure_postgres()
    name = f"rules_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with _pg_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _set_up(kind, PG_URL.format(name=name), workdir)
    finally:
        with _pg_connect() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _set_up(kind: str, url: str, workdir: Path) -> Database:
    """``rules-service demo --no-serve``: migrate, principals, rulesets live through sign-off."""
    tokens_path = workdir / f"tokens-{kind}.json"
    env = {**os.environ, "RULES_SERVICE_DATABASE_URL": url}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rules-service"), "demo", "--no-serve", "--rulesets",
         str(RULESETS), "--tokens", str(tokens_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise BenchError(f"setting up the {kind} database failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    tokens = json.loads(tokens_path.read_text())
    return Database(kind, url, tokens)
