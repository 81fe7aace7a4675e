"""Soak: 200,000 evaluations through the real server's API, nothing leaking, none lost.

The mix: 10% single ``evaluate`` calls from 6 concurrent clients, 90% ``evaluate-batch``
calls of 1,000 inputs from 2 more clients, all at once, against `rules-service serve` with
two gunicorn workers (two engine workers each). The first 10% of the load is the warm-up;
then the server's memory (RSS of the master, the gunicorn workers and the engine workers),
its open file descriptors (every server process's /proc/PID/fd) and, on PostgreSQL, its
connections (pg_stat_activity of the test database) are taken, and taken again after the
rest. Memory may grow at most 10%; descriptors and connections not at all. Every decision
answered with 200 is in the database, and nothing else is. Budget: about 4 minutes per
database on two cores (``RULES_SERVICE_SOAK_EVALUATIONS`` scales it for a quick look).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import Server, free_port
from tests.reliability.support import (
    BATCH,
    CALLER,
    EVALUATE,
    Client,
    Seeded,
    clients,
    expense_claim,
    fd_kinds,
    open_fds,
    rss_bytes,
    seed,
    tree,
)

EVALUATIONS = int(os.environ.get("RULES_SERVICE_SOAK_EVALUATIONS", "200000"))
SINGLE_SHARE = 0.10
BATCH_SIZE = 1000
SINGLE_CLIENTS = 6
BATCH_CLIENTS = 2
WARM_UP_SHARE = 0.10
METRIC_FILES_PER_PROCESS = 8
"""prometheus_client's multiprocess files: counter, histogram, summary, the gauge modes."""
GUNICORN_WORKERS = 2
# SQLAlchemy's default QueuePool keeps 5 connections per process (and closes the up to 10
# it opens beyond them when they come back). A leaked connection never comes back, so
# leaks show here (and, past 15, as requests timing out).
POOL_KEPT = 5
# An SQLite connection holds the database file and its -wal and -shm; one writer lock.
DATABASE_FDS_PER_WORKER = POOL_KEPT * 3 + 1
MEMORY_GROWTH = 0.10


@dataclass
class Tally:
    """What the clients saw: decision ids of every 200, and anything else."""

    ids: set[str] = field(default_factory=set)
    evaluations: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load(server: Server, token: str, singles: int, batches: int, start: int,
         tally: Tally) -> None:
    """``singles`` evaluate calls and ``batches`` batch calls, concurrently."""
    next_single = iter(range(start, start + singles))
    next_batch = iter(range(batches))
    hand_out = threading.Lock()

    def single_client(client: Client) -> None:
        while True:
            with hand_out:
                n = next(next_single, None)
            if n is None:
                return
            status, body = client.post(EVALUATE, {"input": expense_claim(n)})
            with tally.lock:
                if status == 200:
                    tally.ids.add(body["decision_id"])
                    tally.evaluations += 1
                else:
                    tally.failures.append(f"evaluate {status}: {str(body)[:200]}")

    def batch_client(client: Client) -> None:
        while True:
            with hand_out:
                b = next(next_batch, None)
            if b is None:
                return
            first = start + singles + b * BATCH_SIZE
            inputs = [expense_claim(n) for n in range(first, first + BATCH_SIZE)]
            status, body = client.post(BATCH, {"inputs": inputs})
            with tally.lock:
                if status == 200:
                    tally.ids.update(d["decision_id"] for d in body["decisions"])
                    tally.evaluations += len(body["decisions"])
                else:
                    tally.failures.append(f"batch {status}: {str(body)[:200]}")

    with clients(server.base, token, SINGLE_CLIENTS + BATCH_CLIENTS) as made:
        threads = [threading.Thread(target=single_client, args=(c,))
                   for c in made[:SINGLE_CLIENTS]]
        threads += [threading.Thread(target=batch_client, args=(c,))
                    for c in made[SINGLE_CLIENTS:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


@dataclass
class Resources:
    rss: int
    fds: int
    connections: int | None
    fd_kinds: Counter[str]


def settled(server: Server, seeded: Seeded) -> Resources:
    """The server's resources once the clients' connections are closed on its side too."""
    previous = -1
    for _ in range(20):
        time.sleep(0.5)
        fds = open_fds(tree(server))
        if fds == previous:
            break
        previous = fds
    processes = tree(server)
    return Resources(rss_bytes(processes), open_fds(processes), seeded.connections(),
                     fd_kinds(processes, seeded.url))


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with throwaway_database(tmp_path) as url:
        yield seed(tmp_path, url)


@pytest.mark.timeout(600)
def test_200000_evaluations_leak_no_memory_descriptors_or_connections_and_lose_nothing(
        seeded: Seeded) -> None:
    token = seeded.tokens[CALLER]
    singles = int(EVALUATIONS * SINGLE_SHARE)
    batches = (EVALUATIONS - singles) // BATCH_SIZE
    warm_singles, warm_batches = int(singles * WARM_UP_SHARE), int(batches * WARM_UP_SHARE)
    tally = Tally()
    port = free_port()
    started = time.monotonic()
    with seeded.serve(port, workers=GUNICORN_WORKERS) as server:
        load(server, token, warm_singles, warm_batches, 0, tally)
        warm = settled(server, seeded)
        warm_s = time.monotonic() - started
        load(server, token, singles - warm_singles, batches - warm_batches,
             10_000_000, tally)
        after = settled(server, seeded)
        load_s = time.monotonic() - started - warm_s
    [[recorded]] = seeded.query("SELECT count(*) FROM decisions WHERE caller = :caller",
                                caller=CALLER)
    growth = after.rss / warm.rss - 1
    print(f"\nsoak: {tally.evaluations} evaluations ({singles} single, {batches} batches of "
          f"{BATCH_SIZE}) in {warm_s:.0f}+{load_s:.0f} s; RSS {warm.rss / 2**20:.1f} -> "
          f"{after.rss / 2**20:.1f} MiB ({growth:+.1%}); fds {warm.fds} -> {after.fds}; "
          f"connections {warm.connections} -> {after.connections}; recorded {recorded}")
    assert not tally.failures, tally.failures[:5]
    assert tally.evaluations == singles + batches * BATCH_SIZE
    assert len(tally.ids) == tally.evaluations  # every decision its own id
    assert recorded == tally.evaluations
    assert growth <= MEMORY_GROWTH
    # Descriptors other than the database's do not grow at all; the database's (SQLite's
    # files, PostgreSQL's sockets) only within what the connection pools may keep open.
    others_warm, others_after = (
        sum(r.fd_kinds.values()) - r.fd_kinds["database"] - r.fd_kinds["metrics"]
        for r in (warm, after))
    # A metric file per kind of metric and process, opened once: bounded, never a leak.
    assert after.fd_kinds["metrics"] <= METRIC_FILES_PER_PROCESS * (GUNICORN_WORKERS + 1)
    assert others_after <= others_warm, (after.fd_kinds - warm.fd_kinds, warm.fd_kinds)
    assert after.fd_kinds["database"] <= max(warm.fd_kinds["database"],
                                             DATABASE_FDS_PER_WORKER * GUNICORN_WORKERS)
    if after.connections is not None:
        assert warm.connections is not None
        assert after.connections <= max(warm.connections, POOL_KEPT * GUNICORN_WORKERS)
