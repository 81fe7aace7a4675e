"""A rolling upgrade under load: the previous release's code keeps serving while this
checkout's ``rules-service db upgrade`` moves the schema under it.

The previous release (tests/upgrade/previous_release.txt) is taken out of git history
with ``git archive`` and run with this checkout's interpreter and dependencies, as a real
gunicorn server on a database its own ``db upgrade`` and demo seeding made. Threads send
it evaluations (half with an ``Idempotency-Key``) and reads before, during and after the
upgrade; beside it an instance of this release waits for the schema, as in the documented
procedure (docs/deployment.md, "Upgrading"). Every answer must be below 500 and every
decision answered 200 must be in the decision log, exactly those.

The head is whatever this checkout's newest migration is, so every migration a release
adds is rolled over by the previous release's code here.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from rules_service.adapters import migrations_runner
from tests.conftest import database_kind, throwaway_database
from tests.e2e.support import Server, free_port, run_cli, running, server_env
from tests.upgrade.release import extract_release, newest_migration, previous_release

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The previous release's own command line, imported from its tree (PYTHONPATH).
OLD_COMMAND = [sys.executable, "-c",
               "import sys; from rules_service.cli import main; sys.exit(main())"]
RULESET = "expense-approval"
EVALUATE = f"/v1/rulesets/{RULESET}/evaluate"
READS = ("/v1/decisions?limit=5", f"/v1/rulesets/{RULESET}", "/healthz")
CLAIMS = ({"amount": 20, "category": "meals"},
          {"amount": 550, "category": "travel", "has_receipt": True},
          {"amount": 1800, "category": "hardware", "has_receipt": True},
          {"amount": 80, "category": "meals"})
LOAD_THREADS = 4
BEFORE_S = 2.0  # load on the old code's schema before the upgrade starts
AFTER_S = 4.0   # load kept on the new schema after it ends
# Beyond the live-state poll (0.2 s) and a request in flight.
SETTLE_S = 1.0


@dataclass
class Tally:
    """Every answer the load got: when it was asked, what it asked, its status."""

    answers: list[tuple[float, str, int]] = field(default_factory=list)
    decision_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, what: str, status: int, decision_id: str | None) -> None:
        with self.lock:
            self.answers.append((started, what, status))
            if decision_id is not None:
                self.decision_ids.append(decision_id)

    def statuses(self, since: float = 0.0, until: float = float("inf"),
                 ) -> Counter[int]:
        """How many answers of each status the requests started in [since, until) got."""
        with self.lock:
            return Counter(status for started, _, status in self.answers
                           if since <= started < until)


def _one_request(connection: http.client.HTTPConnection, token: str, number: int,
                 ) -> tuple[str, int, str | None]:
    """One evaluation (every other one keyed) or, every fifth request, a read."""
    headers = {"Authorization": f"Bearer {token}"}
    if number % 5 == 4:
        path = READS[number // 5 % len(READS)]
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return f"GET {path.split('?')[0]}", response.status, None
    headers["Content-Type"] = "application/json"
    if number % 2:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    body = json.dumps({"input": CLAIMS[number % len(CLAIMS)]})
    connection.request("POST", EVALUATE, body=body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    decision_id = json.loads(raw)["decision_id"] if response.status == 200 else None
    return "POST evaluate", response.status, decision_id


def _drive(port: int, token: str, stop: threading.Event, tally: Tally, seed: int) -> None:
    """Requests one after another on a kept-alive connection until ``stop``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    number = seed
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                what, status, decision_id = _one_request(connection, token, number)
            except (OSError, http.client.HTTPException) as exc:
                with tally.lock:
                    tally.failures.append(f"{type(exc).__name__}: {exc}")
                connection.close()
            else:
                tally.add(started, what, status, decision_id)
            number += 1
    finally:
        connection.close()


def _old_cli(workdir: Path, env: dict[str, str], *args: str) -> None:
    """One call of the previous release's command line that must succeed."""
    done = subprocess.run([*OLD_COMMAND, *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def _readyz(server: Server) -> tuple[int, Any]:
    status, body, _ = server.exchange("GET", "/readyz", who=None, timeout=10)
    return status, body


def _schema_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return migrations_runner.current_revision(engine)
    finally:
        engine.dispose()


def _decision_ids(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {str(row[0]) for row in connection.execute(text("SELECT id FROM decisions"))}
    finally:
        engine.dispose()


@dataclass
class Rollout:
    """What one rolling upgrade under load showed."""

    release: str
    old_schema: str
    head: str
    tally: Tally
    upgrade_started: float
    upgrade_s: float
    decisions_before: set[str]
    decisions_after: set[str]
    old_ready: dict[str, tuple[int, Any]]
    new_ready: dict[str, tuple[int, Any]]

    def figures(self) -> str:
        during = self.tally.statuses(self.upgrade_started,
                                     self.upgrade_started + self.upgrade_s)
        return (f"rolling upgrade {self.old_schema} -> {self.head} on {database_kind()} "
                f"(previous release {self.release}): {sum(during.values())} requests during "
                f"the upgrade {dict(during)}, {len(self.tally.answers)} in all "
                f"{dict(self.tally.statuses())}, upgrade {self.upgrade_s:.2f} s")


def _run_load(old: Server, token: str, url: str, workdir: Path,
              new: Server) -> tuple[Tally, float, float, dict[str, Any], dict[str, Any]]:
    """Load on ``old`` before, during and after this checkout's ``db upgrade``."""
    tally, stop = Tally(), threading.Event()
    port = int(old.base.rsplit(":", 1)[1])
    threads = [threading.Thread(target=_drive, args=(port, token, stop, tally, seed),
                                name=f"load-{seed}", daemon=True)
               for seed in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_S)
        old_ready, new_ready = {"before": _readyz(old)}, {"before": _readyz(new)}
        upgrade_started = time.monotonic()
        run_cli(workdir, server_env(url), "db", "upgrade")
        upgrade_s = time.monotonic() - upgrade_started
        time.sleep(SETTLE_S)
        old_ready["after"], new_ready["after"] = _readyz(old), _readyz(new)
        time.sleep(AFTER_S - SETTLE_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return tally, upgrade_started, upgrade_s, old_ready, new_ready


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    """The previous release seeded and serving, this release beside it, the upgrade run
    under load once for the module's tests."""
    release = previous_release()
    workdir = tmp_path_factory.mktemp("rolling")
    tree = extract_release(release, tmp_path_factory.mktemp("previous-release"))
    with throwaway_database(workdir) as url, ExitStack() as stack:
        # One engine process per server: the test's CPU goes to the requests.
        new_env = {**server_env(url), "RULES_SERVICE_ENGINE_WORKERS": "1"}
        old_env = {**new_env, "PYTHONPATH": str(tree)}
        imported = subprocess.run(
            [sys.executable, "-c", "import api, rules_service; "
                                   "print(api.__file__); print(rules_service.__file__)"],
            env=old_env, cwd=workdir, capture_output=True, text=True, timeout=60, check=True)
        assert all(Path(p).is_relative_to(tree) for p in imported.stdout.split()), imported
        tokens_path = workdir / "tokens.json"
        _old_cli(workdir, old_env, "db", "upgrade")
        _old_cli(workdir, old_env, "demo", "--no-serve", "--rulesets", str(tree / "rulesets"),
                 "--tokens", str(tokens_path))
        tokens = json.loads(tokens_path.read_text(encoding="utf-8"))
        old_schema = _schema_revision(url)
        assert old_schema == newest_migration(tree), (old_schema, newest_migration(tree))
        head = migrations_runner.head_revision(url)
        if old_schema == head:
            pytest.skip(f"no migration since the previous release {release}: nothing rolls")

        old_port, new_port = free_port(), free_port()
        old = stack.enter_context(running(
            ["serve", "--host", "127.0.0.1", "--port", str(old_port)], workdir, old_env,
            old_port, tokens, command=OLD_COMMAND))
        new = stack.enter_context(running(
            ["serve", "--host", "127.0.0.1", "--port", str(new_port)], workdir, new_env,
            new_port, tokens))
        decisions_before = _decision_ids(url)
        tally, upgrade_started, upgrade_s, old_ready, new_ready = _run_load(
            old, tokens["demo-automation"], url, workdir, new)
        assert _schema_revision(url) == head
        yield Rollout(release, str(old_schema), head, tally, upgrade_started, upgrade_s,
                      decisions_before, _decision_ids(url), old_ready, new_ready)


def test_no_answer_of_the_previous_release_is_a_5xx_while_the_schema_moves(
        rollout: Rollout) -> None:
    print(rollout.figures())
    tally = rollout.tally
    during = tally.statuses(rollout.upgrade_started,
                            rollout.upgrade_started + rollout.upgrade_s)
    assert sum(during.values()) > 0, "no request was answered while the upgrade ran"
    after = tally.statuses(rollout.upgrade_started + rollout.upgrade_s)
    assert after[200] > 0, "no request was answered on the new schema"
    assert tally.failures == []
    server_errors = Counter((what, status) for _, what, status in tally.answers
                            if status >= 500)
    assert not server_errors, rollout.figures()
    assert set(tally.statuses()) == {200}, rollout.figures()


def test_every_decision_answered_is_recorded_and_no_other(rollout: Rollout) -> None:
    answered = rollout.tally.decision_ids
    assert answered and len(set(answered)) == len(answered)
    assert rollout.decisions_after - rollout.decisions_before == set(answered)


def test_the_pool_swaps_when_the_schema_moves(rollout: Rollout) -> None:
    """This release's instance is ready only once the schema is its own."""
    status, body = rollout.new_ready["before"]
    assert status == 503 and body["schema"] == rollout.old_schema, body
    assert f"this code needs {rollout.head}" in body["reason"]
    status, body = rollout.new_ready["after"]
    assert status == 200 and body["schema"] == rollout.head, body


def test_the_previous_release_leaves_the_pool_on_the_newer_schema(rollout: Rollout) -> None:
    """Its /readyz turns 503 while its evaluations keep answering 200 (the other tests)."""
    status, body = rollout.old_ready["before"]
    if status in (401, 404):
        pytest.skip(f"the previous release {rollout.release} has no readiness check "
                    f"(GET /readyz answered {status}): its load balancer checks /healthz")
    assert status == 200 and body["schema"] == rollout.old_schema, body
    status, body = rollout.old_ready["after"]
    assert status == 503 and body["schema"] == rollout.head, body
    assert "newer" in body["reason"]
