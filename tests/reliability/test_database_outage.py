"""The database goes away under load, and comes back: a real server, real clients.

PostgreSQL (postgres_only): a cluster of the test's own on a free port (never the shared
one) is stopped as a crash would stop it, then started again; later it is frozen
(SIGSTOP: it hangs, connections stay open) and thawed. SQLite: another writer holds the
database's write lock past the busy timeout. Clients evaluate all along, each input with
its own Idempotency-Key, retrying it until it succeeds, while a prober reads other routes.

What must hold: no 500 ever; while the database is away every answer that needs it is 503
in the error shape with Retry-After (never a 200 for a decision not recorded), within the
bound the timeouts give when it hangs; the same server recovers without a restart; every
key ends with exactly one recorded decision, the one answered; a decision whose request got
503 is not recorded afterwards (its later retry records it once).

Budget: the PostgreSQL module about 60 s, the SQLite test about 30 s.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import database_kind
from tests.e2e.support import (
    Server,
    free_port,
    migrate_and_add_people,
    running,
    server_env,
)
from tests.e2e.test_two_instances import CONTENT, EVALUATE, PEOPLE, _activate
from tests.reliability.private_postgres import PrivateCluster, postgres_bindir, private_cluster

CALLER = "expense-tool"
CLIENTS = 4
RETRY_PAUSE_S = 0.2
"""Clients retry sooner than the Retry-After (5 s) they are given, to time the recovery."""

CONNECT_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 2.0
POOL_TIMEOUT_S = 2.0
SERVER_SETTINGS = {
    "RULES_SERVICE_DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
    "RULES_SERVICE_DATABASE_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT_S),
    "RULES_SERVICE_DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT_S),
    "RULES_SERVICE_ENGINE_WORKERS": "1",
}
HUNG_BOUND_S = CONNECT_TIMEOUT_S + (STATEMENT_TIMEOUT_S + 1.0) + POOL_TIMEOUT_S + 2.0
"""Longest any request may take while the database hangs: a pooled connection's ping
(statement timeout + 1 s) then a new connection (connect timeout), perhaps a wait for a
free pooled connection, and 2 s for the machine (2 cores, 5 test runs at once)."""

HUNG_FOR_S = HUNG_BOUND_S + 4.0
"""Long enough that requests sent in the first seconds of the hang must be answered in it."""

PROBE_INPUT = {"input": {"amount": 7, "category": "meals"}}
PROBED = ("/healthz", "/v1/decisions?limit=1", "/v1/rulesets")


@dataclass(frozen=True)
class Answer:
    """One request and what the server said."""

    route: str
    key: str | None
    started: float
    ended: float
    status: int
    body: Any
    retry_after: str | None

    @property
    def seconds(self) -> float:
        """How long the answer took."""
        return self.ended - self.started


@dataclass
class Load:
    """Clients evaluating one keyed input after another (each key retried until it gets a
    200), and a prober reading other routes, until stopped."""

    server: Server
    prefix: str
    answers: list[Answer] = field(default_factory=list)
    decided: dict[str, str] = field(default_factory=dict)
    """key -> the decision id its 200 answered"""
    attempts: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def request(self, route: str, body: Any = None, key: str | None = None,
                who: str | None = CALLER) -> Answer:
        """One request, recorded."""
        headers = {"Idempotency-Key": key} if key else {}
        started = time.monotonic()
        status, parsed, got = self.server.exchange("POST" if body is not None else "GET",
                                                   route, body, who, headers, timeout=60)
        answer = Answer(route, key, started, time.monotonic(), status, parsed,
                        got.get("Retry-After"))
        with self._lock:
            self.answers.append(answer)
            if key is not None:
                self.attempts[key] += 1
                if status == 200:
                    self.decided[key] = parsed["decision_id"]
        return answer

    def evaluate_until_recorded(self, key: str, amount: int, give_up_at: float) -> None:
        """Sends the keyed input until it gets a 200 (or the deadline passes)."""
        body = {"input": {"amount": amount, "category": "meals"}}
        while time.monotonic() < give_up_at:
            if self.request(EVALUATE, body, key).status == 200:
                return
            time.sleep(RETRY_PAUSE_S)

    def _client(self, number: int) -> None:
        while not self._stop.is_set():
            key = f"{self.prefix}-{number}-{next(self._serial)}"
            # A key once sent is retried until it succeeds, even after the stop.
            self.evaluate_until_recorded(key, 1 + len(key) % 40, time.monotonic() + 120)

    def _prober(self) -> None:
        while not self._stop.is_set():
            for route in PROBED:
                self.request(route, who=None if route == "/healthz" else "admin")
            time.sleep(0.1)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(CLIENTS)]
        self._threads.append(threading.Thread(target=self._prober, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(150)
        assert not any(t.is_alive() for t in self._threads), "a client never finished"

    def first_200_after(self, moment: float, route: str = EVALUATE,
                        timeout_s: float = 60) -> float:
        """When the first 200 of ``route`` sent after ``moment`` came back."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                ends = [a.ended for a in self.answers
                        if a.route == route and a.status == 200 and a.started >= moment]
            if ends:
                return min(ends)
            time.sleep(0.05)
        raise AssertionError(f"{route} did not recover within {timeout_s} s")

    def between(self, start: float, end: float) -> list[Answer]:
        """The answers to requests sent and answered between the two moments."""
        with self._lock:
            return [a for a in self.answers if a.started >= start and a.ended <= end]

    def sent_between(self, start: float, end: float) -> list[Answer]:
        """The answers to requests sent between the two moments."""
        with self._lock:
            return [a for a in self.answers if start <= a.started <= end]


def assert_unavailable(answer: Answer) -> None:
    """503 in the error envelope's shape (or /healthz's), with Retry-After."""
    assert answer.status == 503, answer
    assert answer.retry_after == "5", answer
    if answer.route == "/healthz":
        assert answer.body["status"] == "unavailable", answer
    else:
        assert set(answer.body) == {"error"}, answer
        assert answer.body["error"]["code"] == "database_unavailable", answer
        assert set(answer.body["error"]) == {"code", "message", "details"}, answer


def assert_only_200_or_503(answers: list[Answer]) -> None:
    """Never a 500 (or anything else): a decision is recorded or the database is away."""
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}, (statuses, [a for a in answers
                                                    if a.status not in (200, 503)][:3])
    for answer in answers:
        if answer.status == 503:
            assert_unavailable(answer)


def recorded(url: str) -> list[tuple[str, str]]:
    """(idempotency key, decision id) of every decision the clients' caller has."""
    query = "SELECT idempotency_key, id FROM decisions WHERE caller = 'expense-tool'"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [(str(k), str(i)) for k, i in conn.execute(query)]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        return [(str(k), str(i)) for k, i in conn.execute(query)]


def assert_each_key_recorded_once(load: Load, url: str) -> dict[str, int]:
    """Every key answered 200 has exactly one decision, the one answered; the figures."""
    rows = [(k, i) for k, i in recorded(url) if k.startswith(f"{load.prefix}-")]
    per_key = Counter(k for k, _ in rows)
    doubled = sorted(k for k, n in per_key.items() if n > 1)
    stored = dict(rows)
    lost = sorted(k for k, i in load.decided.items() if stored.get(k) != i)
    unanswered = sorted(set(stored) - set(load.decided))
    assert (lost, doubled, unanswered) == ([], [], []), (lost[:5], doubled[:5], unanswered[:5])
    return {"keys": len(load.decided),
            "keys retried": sum(1 for n in load.attempts.values() if n > 1),
            "attempts": sum(load.attempts.values()), "lost": len(lost),
            "doubled": len(doubled)}


@contextmanager
def prepared_server(workdir: Path, url: str, extra_env: dict[str, str]) -> Iterator[Server]:
    """Migrated database, the principals, the expense ruleset live, a real server on it."""
    env = server_env(url)

    tokens = migrate_and_add_people(workdir, env, PEOPLE)
    port = free_port()
    with running(["serve", "--host", "127.0.0.1", "--port", str(port)], workdir,
                 {**env, **extra_env}, port, tokens) as server:
        _activate(server, CONTENT)
        yield server


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresRig:
    """The private cluster and the server on it."""

    cluster: PrivateCluster
    server: Server
    figures: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresRig]:
    if database_kind() != "postgresql":
        pytest.skip("needs PostgreSQL (RULES_SERVICE_TEST_DATABASE=postgresql)")
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are needed for the outage tests")
    workdir = tmp_path_factory.mktemp("outage")
    with private_cluster() as cluster, \
            prepared_server(workdir, cluster.url, SERVER_SETTINGS) as server:
        yield PostgresRig(cluster, server)


@dataclass
class OutageRun:
    """What happened while the cluster was stopped and started again."""

    load: Load
    stopped: float
    starting: float
    started: float
    recovered: float


@pytest.fixture(scope="module")
def outage(rig: PostgresRig) -> OutageRun:
    """The cluster stopped (as by a crash) for 5 s under load, then started again."""
    with Load(rig.server, "outage") as load:
        time.sleep(2.0)
        rig.cluster.stop("immediate")
        stopped = time.monotonic()
        time.sleep(5.0)
        starting = time.monotonic()
        rig.cluster.start()
        started = time.monotonic()
        recovered = load.first_200_after(started)
        time.sleep(1.0)
    return OutageRun(load, stopped, starting, started, recovered)


@pytest.mark.postgres_only
def test_a_stopped_cluster_is_answered_503_everywhere_and_the_same_server_recovers(
        rig: PostgresRig, outage: OutageRun) -> None:
    load = outage.load
    assert_only_200_or_503(load.answers)
    during = load.between(outage.stopped, outage.starting)
    assert len(during) >= 10, "too few requests met the outage"
    for answer in during:
        assert_unavailable(answer)
    assert {a.route for a in during} >= {EVALUATE, *PROBED}
    assert rig.server.process is not None and rig.server.process.poll() is None
    assert load.first_200_after(outage.started, "/healthz") - outage.started < 15
    recovery = outage.recovered - outage.started
    assert recovery < 15
    rig.figures.update({
        "outage: requests answered during it": len(during),
        "outage: statuses during it": dict(Counter(a.status for a in during)),
        "outage: statuses overall": dict(Counter(a.status for a in load.answers)),
        "outage: recovery after the cluster was up (s)": round(recovery, 2)})


@pytest.mark.postgres_only
def test_idempotent_retries_across_the_outage_record_each_key_exactly_once(
        rig: PostgresRig, outage: OutageRun) -> None:
    figures = assert_each_key_recorded_once(outage.load, rig.cluster.url)
    assert figures["keys retried"] >= CLIENTS, "no key was retried across the outage"
    rig.figures.update({f"outage: {k}": v for k, v in figures.items()})


@pytest.mark.postgres_only
def test_a_hung_cluster_is_answered_503_within_the_bound_and_recovers(
        rig: PostgresRig) -> None:
    probes: list[Answer] = []
    with Load(rig.server, "hung") as load:
        time.sleep(2.0)
        frozen = rig.cluster.freeze()
        try:
            froze = time.monotonic()
            # Sent once each while it hangs, and not retried until it is back.
            for n in range(3):
                probes.append(load.request(EVALUATE, PROBE_INPUT, f"stuck-{n}"))
            time.sleep(max(0.0, froze + HUNG_FOR_S - time.monotonic()))
        finally:
            thawing = time.monotonic()
            rig.cluster.thaw(frozen)
        recovered = load.first_200_after(thawing)
        time.sleep(1.0)
    assert_only_200_or_503(load.answers)
    for answer in load.between(froze, thawing):
        assert_unavailable(answer)
    hung = load.sent_between(froze, thawing - HUNG_BOUND_S)
    assert len(hung) >= 4, "too few requests met the hang"
    for answer in hung:
        assert_unavailable(answer)
        assert answer.seconds <= HUNG_BOUND_S, answer
    for probe in probes:
        assert_unavailable(probe)
    # Sent while it hung and given up on: not recorded when it came back ...
    probe_keys = {p.key for p in probes}
    assert not [k for k, _ in recorded(rig.cluster.url) if k in probe_keys]
    # ... and recorded once by their retries.
    retried = Load(rig.server, "stuck")
    for probe in probes:
        assert probe.key is not None
        retried.evaluate_until_recorded(probe.key, 7, time.monotonic() + 30)
    assert set(retried.decided) == probe_keys
    figures = assert_each_key_recorded_once(load, rig.cluster.url)
    assert_each_key_recorded_once(retried, rig.cluster.url)
    rig.figures.update({
        "hung: requests answered while it hung": len(load.between(froze, thawing)),
        "hung: statuses": dict(Counter(a.status for a in hung)),
        "hung: slowest answer (s)": round(max(a.seconds for a in hung), 2),
        "hung: bound asserted (s)": HUNG_BOUND_S,
        "hung: recovery after SIGCONT (s)": round(recovered - thawing, 2),
        **{f"hung: {k}": v for k, v in figures.items()}})
    print("\nfigures:", rig.figures)


# --------------------------------------------------------------------------- SQLite


def test_sqlite_locked_past_its_busy_timeout_answers_503_then_recovers(
        tmp_path: Path) -> None:
    """SQLite's outage: another writer holds the write lock for 5 s; the busy timeout is
    0.5 s. Decisions get 503 with Retry-After and are not recorded; reads are still
    served (WAL readers do not wait for writers); the lock released, all is recorded."""
    if database_kind() != "sqlite":
        pytest.skip("the SQLite run covers SQLite")
    url = f"sqlite:///{tmp_path / 'rules-service.db'}"
    settings = {**SERVER_SETTINGS, "RULES_SERVICE_SQLITE_BUSY_TIMEOUT": "0.5"}
    with prepared_server(tmp_path, url, settings) as server, Load(server, "locked") as load:
        time.sleep(2.0)
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked = time.monotonic()
        probe = load.request(EVALUATE, PROBE_INPUT, "locked-probe")
        time.sleep(5.0)
        releasing = time.monotonic()
        holder.execute("ROLLBACK")
        holder.close()
        recovered = load.first_200_after(releasing)
        time.sleep(1.0)
    assert_only_200_or_503(load.answers)
    during = load.sent_between(locked + 0.1, releasing - 3.0)
    writes = [a for a in during if a.route == EVALUATE]
    assert len(writes) >= 3
    for answer in writes:
        assert_unavailable(answer)
        assert answer.seconds <= 3.0, answer
    assert all(a.status == 200 for a in during if a.route != EVALUATE)
    assert_unavailable(probe)
    assert "locked-probe" not in {k for k, _ in recorded(url)}
    figures = assert_each_key_recorded_once(load, url)
    print("\nfigures:", {"locked: evaluations answered while locked": len(writes),
                         "locked: slowest (s)": round(max(a.seconds for a in writes), 2),
                         "locked: recovery (s)": round(recovered - releasing, 2), **figures})
