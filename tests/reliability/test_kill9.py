"""kill -9 under load: a gunicorn worker, an engine worker, then the whole server.

Six clients evaluate claims, each with its own Idempotency-Key, retrying the same key after
any failure (a dropped connection, a refused one, a 5xx) until it is answered 200; every
tenth answered key is sent once more and must be replayed as the same decision. Meanwhile
the test SIGKILLs (a) one gunicorn worker, (b) every engine worker process (their
evaluations in flight get the ruleset's fallback, recorded as such), (c) the master
and every process under it, then starts `rules-service serve` again on the same database
and port. After each fault the service must answer again by itself (within 60 s; the
restart in (c) is the test's). Then, read from the database directly: every key answered
200 has exactly one decision, the one it was answered with (looked up by id and by key);
no decision is a half record (an escalate decision has its escalation, every escalation
its decision and its ``escalation.opened`` outbox event, fired and deciding rules agree).
Budget: about 3 minutes per database.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import Server, free_port
from tests.reliability.support import (
    CALLER,
    EVALUATE,
    Client,
    Seeded,
    engine_workers,
    expense_claim,
    gunicorn_workers,
    kill_tree,
    seed,
)

CLIENTS = 6
KEY_DEADLINE_S = 120  # a key not answered by then is a failure of the test
RECOVERY_S = 60
LOAD_BETWEEN_FAULTS = 600  # answers between one fault's recovery and the next fault
REPLAY_EVERY = 10


@dataclass
class Figures:
    """What the clients saw."""

    answered: dict[str, str] = field(default_factory=dict)  # key -> decision id
    requests: int = 0
    retried: set[str] = field(default_factory=set)
    replays: int = 0
    fallbacks: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.answered)


class Load:
    """The clients, running until stopped (a restarted server comes back on the same port)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.figures = Figures()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """Stops the clients once each has its current key answered."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=KEY_DEADLINE_S + 30)

    def _call(self, client: Client, key: str, claim: dict[str, Any]) -> str | None:
        """The decision id once answered 200 (retrying the same key), None on a 4xx."""
        deadline = time.monotonic() + KEY_DEADLINE_S
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            with self.figures.lock:
                self.figures.requests += 1
            try:
                status, body = client.post(EVALUATE, {"input": claim},
                                           {"Idempotency-Key": key})
            except Exception:  # a dropped or refused connection: retry
                time.sleep(0.1)
                continue
            if status == 200:
                if attempts > 1:
                    with self.figures.lock:
                        self.figures.retried.add(key)
                if body.get("fallback"):
                    with self.figures.lock:
                        self.figures.fallbacks += 1
                return str(body["decision_id"])
            if status < 500:
                with self.figures.lock:
                    self.figures.problems.append(f"{key}: {status} {str(body)[:200]}")
                return None
            time.sleep(0.1)
        with self.figures.lock:
            self.figures.problems.append(f"{key}: not answered in {KEY_DEADLINE_S} s")
        return None

    def _client(self, index: int) -> None:
        client = Client(self.base, self.token)
        n = 0
        try:
            while not self.stop.is_set():
                key = f"kill-{index}-{n}"
                claim = expense_claim(index * 1_000_000 + n)
                decision_id = self._call(client, key, claim)
                if decision_id is not None:
                    with self.figures.lock:
                        self.figures.answered[key] = decision_id
                    if n % REPLAY_EVERY == 0:
                        again = self._call(client, key, claim)
                        with self.figures.lock:
                            self.figures.replays += 1
                            if again != decision_id:
                                self.figures.problems.append(
                                    f"{key}: replayed as {again}, first {decision_id}")
                n += 1
        finally:
            client.close()

    def wait_for_answers(self, more: int, timeout_s: float = RECOVERY_S) -> float:
        """Seconds until ``more`` further keys are answered (the service is back)."""
        started = time.monotonic()
        target = self.figures.count() + more
        while self.figures.count() < target:
            assert time.monotonic() - started < timeout_s, (
                f"no recovery in {timeout_s} s", self.figures.problems[:5])
            time.sleep(0.05)
        return time.monotonic() - started


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with throwaway_database(tmp_path) as url:
        yield seed(tmp_path, url)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_records(seeded: Seeded, answered: dict[str, str]) -> dict[str, int]:
    """Every answered key recorded once as answered; no half records. The figures."""
    rows = seeded.query(
        "SELECT id, idempotency_key, outcome, fired_rules, deciding_rules, fallback "
        "FROM decisions WHERE caller = :caller", caller=CALLER)
    by_key = Counter(row.idempotency_key for row in rows)
    id_of_key = {row.idempotency_key: row.id for row in rows}
    ids = {row.id for row in rows}
    lost = [k for k, i in answered.items() if i not in ids or id_of_key.get(k) != i]
    doubled = [k for k, c in by_key.items() if c > 1]
    unanswered = sorted(set(by_key) - set(answered))
    escalations = seeded.query("SELECT id, decision_id FROM escalations")
    opened = {_json(row.data)["escalation_id"] for row in seeded.query(
        "SELECT data FROM outbox_events WHERE type = 'escalation.opened'")}
    escalated = {row.decision_id for row in escalations}
    half = [f"escalate decision {row.id} without escalation" for row in rows
            if row.outcome == "escalate" and row.id not in escalated]
    half += [f"escalation {e.id} of missing decision {e.decision_id}" for e in escalations
             if e.decision_id not in ids]
    half += [f"escalation {e.id} without its outbox event" for e in escalations
             if e.id not in opened]
    for row in rows:
        fired = {rule["id"] for rule in _json(row.fired_rules)}
        if not row.fallback and not set(_json(row.deciding_rules)) <= fired:
            half.append(f"decision {row.id}: deciding rules not among fired ones")
    assert not lost, lost[:10]
    assert not doubled, doubled[:10]
    assert not half, half[:10]
    assert not unanswered, unanswered[:10]
    return {"recorded": len(rows), "escalations": len(escalations), "lost": len(lost),
            "doubled": len(doubled), "half": len(half)}


@pytest.mark.timeout(600)
def test_kill_9_of_workers_engine_workers_and_the_server_loses_and_doubles_nothing(
        seeded: Seeded) -> None:
    port = free_port()
    token = seeded.tokens[CALLER]
    recovery: dict[str, float] = {}
    started = time.monotonic()
    with ExitStack() as first:
        server: Server = first.enter_context(seeded.serve(port, workers=2))
        with Load(server.base, token) as load:
            load.wait_for_answers(LOAD_BETWEEN_FAULTS)

            victims = gunicorn_workers(server)
            victims[0].kill()
            recovery["gunicorn worker"] = load.wait_for_answers(LOAD_BETWEEN_FAULTS)
            deadline = time.monotonic() + RECOVERY_S
            while {p.pid for p in gunicorn_workers(server)} & {victims[0].pid} or len(
                    gunicorn_workers(server)) < 2:
                assert time.monotonic() < deadline, "the master did not replace its worker"
                time.sleep(0.1)

            # Every engine worker at once, so that some are caught deciding.
            engines = engine_workers(server)
            assert engines, "no engine worker to kill"
            for engine in engines:
                engine.kill()
            recovery["engine workers"] = load.wait_for_answers(LOAD_BETWEEN_FAULTS)

            killed = kill_tree(server)
            down = time.monotonic()
            first.close()
            with seeded.serve(port, workers=2):
                recovery["whole server"] = load.wait_for_answers(LOAD_BETWEEN_FAULTS)
                recovery["whole server (from the kill)"] = time.monotonic() - down
                load.finish()  # while the server still answers
            figures = load.figures
    records = check_records(seeded, figures.answered)
    print(f"\nkill -9: {figures.requests} requests, {len(figures.answered)} keys answered, "
          f"{len(figures.retried)} retried across faults, {figures.replays} replays checked, "
          f"{figures.fallbacks} fallbacks; recorded {records['recorded']} "
          f"({records['escalations']} escalations), lost {records['lost']}, doubled "
          f"{records['doubled']}, half records {records['half']}; server tree of {killed} "
          f"processes killed, {len(engines)} engine workers before; recovery s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in recovery.items())
          + f"; {time.monotonic() - started:.0f} s in all")
    assert not figures.problems, figures.problems[:10]
    assert records["recorded"] == len(figures.answered)
    assert figures.retried, "no request was caught by a fault: the test proved nothing"
