"""A seeded real server to load and to hurt: its process tree, its resources, and clients.

The server is `rules-service serve` on a throwaway database (tests/conftest.py) seeded by
`rules-service demo --no-serve` (the example rulesets live, the demo tokens); clients keep
one HTTP/1.1 connection each, as a real automation would.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import database_kind
from tests.e2e.support import ROOT, Server, cli_command, running, server_env

RULESET = "expense-approval"
EVALUATE = f"/v1/rulesets/{RULESET}/evaluate"
BATCH = f"/v1/rulesets/{RULESET}/evaluate-batch"
CALLER = "demo-automation"

CATEGORIES = ("travel", "meals", "software", "hardware", "training", "entertainment", "other")


def expense_claim(n: int) -> dict[str, Any]:
    """The n-th claim of a fixed mix: mostly approved, some escalated, some rejected."""
    claim: dict[str, Any] = {"amount": (n * 37) % 2400, "category": CATEGORIES[n % 7],
                             "has_receipt": n % 5 != 0, "employee_level": 1 + n % 10}
    if n % 11 == 0:
        claim["currency"] = "USD"
    if n % 13 == 0:
        claim["merchant"] = "Casino Royale"
    return claim


@dataclass
class Seeded:
    """A database with the example rulesets live, and how to serve it."""

    workdir: Path
    url: str
    env: dict[str, str]
    tokens: dict[str, str]

    def serve(self, port: int, workers: int = 2) -> Any:
        """`rules-service serve` on this database (a context manager yielding a Server)."""
        return running(["serve", "--port", str(port), "--workers", str(workers)],
                       self.workdir, self.env, port, self.tokens)

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of one query on the service's database, read directly."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(sql), params))
        finally:
            engine.dispose()

    def connections(self) -> int | None:
        """Open PostgreSQL connections to this database (None on SQLite: see fds)."""
        if database_kind() != "postgresql":
            return None
        url = make_url(self.url)
        admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                               "AND pid <> pg_backend_pid()", (url.database,)).fetchone()
        return int(row[0]) if row else 0


def seed(workdir: Path, url: str) -> Seeded:
    """Migrates and seeds ``url`` with `rules-service demo --no-serve`; the demo tokens."""
    env = server_env(url)
    tokens_path = workdir / "demo-tokens.json"
    done = subprocess.run(
        [*cli_command(), "demo", "--no-serve", "--no-worker", "--rulesets",
         str(ROOT / "rulesets"), "--tokens", str(tokens_path)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    tokens = json.loads(tokens_path.read_text())
    return Seeded(workdir, url, env, tokens)


def tree(server: Server) -> list[psutil.Process]:
    """The server's processes: the gunicorn master, its workers and their engine workers."""
    assert server.process is not None
    master = psutil.Process(server.process.pid)
    return [master, *master.children(recursive=True)]


def gunicorn_workers(server: Server) -> list[psutil.Process]:
    """The master's direct children: its gunicorn workers."""
    assert server.process is not None
    return psutil.Process(server.process.pid).children()


def engine_workers(server: Server) -> list[psutil.Process]:
    """The engine worker processes (children of the gunicorn workers)."""
    return [child for worker in gunicorn_workers(server) for child in worker.children()]


def rss_bytes(processes: list[psutil.Process]) -> int:
    """Resident memory of all of them."""
    return sum(p.memory_info().rss for p in processes if p.is_running())


def open_fds(processes: list[psutil.Process]) -> int:
    """Open file descriptors of all of them (/proc/PID/fd)."""
    return sum(len(os.listdir(f"/proc/{p.pid}/fd")) for p in processes if p.is_running())


def fd_kinds(processes: list[psutil.Process], database_url: str) -> Counter[str]:
    """What the open descriptors are: ``database`` (SQLite's files and lock, PostgreSQL
    sockets), ``metrics`` (the multiprocess metric files) and everything else by process
    role and target (a leak's diagnosis)."""
    url = make_url(database_url)
    sqlite_path = url.database if url.get_backend_name() == "sqlite" else None
    pg_port = None if sqlite_path else (url.port or 5432)
    kinds: Counter[str] = Counter()
    for role, process in _roles(processes):
        try:
            database_sockets = {c.fd for c in process.net_connections(kind="inet")
                                if c.raddr and c.raddr.port == pg_port}
            fds = os.listdir(f"/proc/{process.pid}/fd")
        except (psutil.Error, OSError):
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
            except OSError:
                continue
            if int(fd) in database_sockets or (sqlite_path and target.startswith(sqlite_path)):
                kinds["database"] += 1
            elif "/rules-service-metrics-" in target:
                # prometheus_client's multiprocess files: one per kind of metric (counter,
                # gauge, histogram...) per process, opened when the first such is observed.
                kinds["metrics"] += 1
            else:
                kinds[f"{role} {target.split(':[')[0]}"] += 1
    return kinds


def _roles(processes: list[psutil.Process]) -> Iterator[tuple[str, psutil.Process]]:
    master = processes[0]
    for process in processes:
        if not process.is_running():
            continue
        role = ("master" if process.pid == master.pid
                else "worker" if process.ppid() == master.pid else "engine")
        yield role, process


def kill_tree(server: Server) -> int:
    """SIGKILL to the master and every process under it at once; how many were killed."""
    processes = tree(server)
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=30)
    assert server.process is not None
    server.process.wait(timeout=30)
    return len(processes)


class Client:
    """One keep-alive HTTP connection, reopened after any failure."""

    def __init__(self, base: str, token: str, timeout_s: float = 30) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.timeout_s = host, int(port), timeout_s
        self.headers = {"Authorization": f"Bearer {token}",
                        "Content-Type": "application/json"}
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None,
             ) -> tuple[int, Any]:
        """(status, parsed JSON body); raises OSError/HTTPException when the call failed."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port,
                                                         timeout=self.timeout_s)
        try:
            self.connection.request("POST", path, json.dumps(body),
                                    {**self.headers, **(headers or {})})
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        """Closes the connection (the next call opens a new one)."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@contextmanager
def clients(base: str, token: str, count: int) -> Iterator[list[Client]]:
    """``count`` clients, closed at the end."""
    made = [Client(base, token) for _ in range(count)]
    try:
        yield made
    finally:
        for client in made:
            client.close()
