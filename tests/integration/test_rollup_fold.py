"""The rollup fold counts every recorded decision exactly once: whatever the interleaving
of writes and folds, with writers and two folders running at once, when a decision's
transaction commits after later ones were folded, and when a folding process is killed
half-way, in a pass of ``rules-service worker --once`` and when the schema goes back to
the revision before the fold; and the figures of ``/metrics`` follow the decisions within
``FIGURES_BEHIND_S`` with no fold called by hand.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.exc import OperationalError

from rules_service.adapters import migrations_runner, rollup_fold
from rules_service.adapters.database import make_engine
from rules_service.adapters.decision_log import DecisionRecord, GroupCommitWriter, write_decisions
from rules_service.adapters.orm import DecisionRow, RulesetRow, decision_totals, rollup_pending
from rules_service.adapters.rollup_fold import RollupFolder
from rules_service.bootstrap import Container
from rules_service.cli import main
from tests.integration.api_fixtures import Api
from tests.integration.test_hot_path import EVALUATE, activate
from tests.integration.test_rollups import _assert_rollups_equal_a_scan

START = datetime(2026, 11, 30, 23, 58, 30, tzinfo=UTC)
OUTCOMES = ("approve", "reject", "escalate")


def _ruleset(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(RulesetRow).values(
            name=f"r-{uuid.uuid4().hex[:8]}", title="", created_at=START)
            .returning(RulesetRow.id)).scalar_one())


def _records(ruleset_id: int, first: int, count: int) -> list[DecisionRecord]:
    """Decisions spread over minutes, hours and midnight, with every outcome, some
    fallbacks and durations over many latency buckets."""
    return [DecisionRecord(
        id=str(uuid.uuid4()), ruleset_id=ruleset_id, version=1 + n % 2, input={"n": n},
        outcome=OUTCOMES[n % 3], fired_rules=[], deciding_rules=[], fallback=n % 7 == 0,
        fallback_reason="engine timeout" if n % 7 == 0 else None, caller="bot",
        idempotency_key=None, request_hash=None,
        evaluated_at=START + timedelta(seconds=23 * n), duration_ms=0.03 * 2.3 ** (n % 13))
        for n in range(first, first + count)]


def _write(engine: Engine, records: list[DecisionRecord]) -> None:
    with engine.begin() as conn:
        write_decisions(conn, records)


def _counted(engine: Engine) -> tuple[int, int, int]:
    """(decisions recorded, counted in the totals, waiting to be counted)."""
    with engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(DecisionRow)).scalar_one()
        counted = conn.execute(select(func.coalesce(func.sum(decision_totals.c.count), 0))
                               ).scalar_one()
        waiting = conn.execute(select(func.count()).select_from(rollup_pending)).scalar_one()
    return int(recorded), int(counted), int(waiting)


@pytest.fixture
def ruleset_id(container: Container) -> int:
    return _ruleset(container.engine)


@pytest.fixture
def second_engine(database_url: str) -> Iterator[Engine]:
    """Another process's view of the database: an engine with connections of its own."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.tuples(st.just("write"), st.integers(1, 40)),
                                st.tuples(st.just("fold"), st.integers(1, 25))),
                      max_size=12))
def test_any_interleaving_of_writes_and_folds_counts_each_decision_once(
        container: Container, ruleset_id: int, steps: list[tuple[str, int]]) -> None:
    # The tables carry over from one example to the next: every check is on the whole.
    written = _counted(container.engine)[0]
    for kind, n in steps:
        if kind == "write":
            _write(container.engine, _records(ruleset_id, written, n))
            written += n
        else:
            before = _counted(container.engine)[2]
            folded = rollup_fold.fold_pending(container.engine, limit=n)
            assert folded == before  # batch after batch until nothing waits
        recorded, counted, waiting = _counted(container.engine)
        assert recorded == written and counted + waiting == recorded
    rollup_fold.fold_pending(container.engine)
    assert _counted(container.engine)[2] == 0
    _assert_rollups_equal_a_scan(container)


def test_writers_and_two_folders_at_once_count_each_decision_once(
        container: Container, ruleset_id: int, second_engine: Engine) -> None:
    writer = GroupCommitWriter(container.engine)
    folders = [RollupFolder(container.engine, interval_s=0.01),
               RollupFolder(second_engine, interval_s=0.01)]
    for folder in folders:
        folder.start()

    def write(thread: int) -> None:
        for batch in range(15):
            writer.write(_records(ruleset_id, thread * 1000 + batch * 7, 7))

    try:
        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        writer.close()
        for folder in folders:
            folder.close()
    assert sum(f.folded for f in folders) > 0  # the background folders did fold
    rollup_fold.fold_pending(container.engine)
    assert _counted(container.engine) == (4 * 15 * 7, 4 * 15 * 7, 0)
    _assert_rollups_equal_a_scan(container)


@pytest.mark.postgres_only  # SQLite has one writer: no transaction can commit late
def test_a_decision_whose_transaction_commits_late_is_still_counted_once(
        container: Container, ruleset_id: int) -> None:
    early = _records(ruleset_id, 0, 1)
    with container.engine.connect() as slow:
        slow.begin()
        write_decisions(slow, early)  # takes its position now, commits last
        _write(container.engine, _records(ruleset_id, 1, 3))
        assert rollup_fold.fold_pending(container.engine) == 3
        assert _counted(container.engine) == (3, 3, 0)
        slow.commit()
    with container.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rollup_pending)).scalar_one() == 1
    assert rollup_fold.fold_pending(container.engine) == 1
    assert _counted(container.engine) == (4, 4, 0)
    _assert_rollups_equal_a_scan(container)


FOLD_SCRIPT = """
import sys, time
from rules_service.adapters import rollup_fold
from rules_service.adapters.database import make_engine
one_batch = rollup_fold._fold_once
def paced(*args, **kwargs):  # a pause after each committed batch: the kill lands mid-way
    folded = one_batch(*args, **kwargs)
    time.sleep(0.02)
    return folded
rollup_fold._fold_once = paced
rollup_fold.fold_pending(make_engine(sys.argv[1]), limit=int(sys.argv[2]))
"""


def test_a_folding_process_killed_half_way_loses_and_doubles_nothing(
        container: Container, ruleset_id: int, database_url: str) -> None:
    backlog, batch = 24_000, 400
    for first in range(0, backlog, 2000):
        _write(container.engine, _records(ruleset_id, first, 2000))
    assert _counted(container.engine) == (backlog, 0, backlog)
    folding = subprocess.Popen([sys.executable, "-c", FOLD_SCRIPT, database_url, str(batch)],
                               env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while _counted(container.engine)[2] == backlog:  # until its first batch commits
            assert folding.poll() is None, "the fold ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(folding.pid, signal.SIGKILL)
    finally:
        folding.wait(timeout=60)
    assert folding.returncode == -signal.SIGKILL
    recorded, counted, waiting = _counted(container.engine)
    assert 0 < counted < backlog and counted + waiting == recorded == backlog
    rollup_fold.fold_pending(container.engine)
    assert _counted(container.engine) == (backlog, backlog, 0)
    _assert_rollups_equal_a_scan(container)


def _decisions_in_metrics(api: Api) -> float:
    text = api.get("/metrics", who="bot").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rules_service_decisions_total{"))


def test_metrics_count_new_decisions_within_the_bound_with_no_fold_by_hand(
        api: Api, container: Container) -> None:
    activate(api)
    before = _decisions_in_metrics(api)
    for amount in (5, 500, 7, 70):
        assert api.post(EVALUATE, {"input": {"amount": amount}}, who="bot").status_code == 200
    answered = time.monotonic()
    while (seen := _decisions_in_metrics(api)) != before + 4:
        assert time.monotonic() - answered < rollup_fold.FIGURES_BEHIND_S, seen
        time.sleep(0.02)


def test_a_worker_pass_folds_what_is_pending(container: Container, ruleset_id: int,
                                             database_url: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _write(container.engine, _records(ruleset_id, 0, 9))
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    assert main(["worker", "--once"]) == 0
    assert "decisions folded into the figures 9," in capsys.readouterr().out
    assert _counted(container.engine) == (9, 9, 0)


def test_going_back_to_the_previous_schema_counts_what_was_pending(
        container: Container, ruleset_id: int, database_url: str) -> None:
    _write(container.engine, _records(ruleset_id, 0, 40))
    rollup_fold.fold_pending(container.engine)
    _write(container.engine, _records(ruleset_id, 40, 70))
    assert _counted(container.engine) == (110, 40, 70)
    container.engine.dispose()  # SQLite: no connection of ours holds the file during DDL
    try:
        command.downgrade(migrations_runner.alembic_config(database_url), "0010")
        with container.engine.connect() as conn:
            assert "rollup_pending" not in inspect(conn).get_table_names()
        _assert_rollups_equal_a_scan(container)
    finally:
        migrations_runner.upgrade(database_url)
    assert _counted(container.engine) == (110, 110, 0)


def test_a_folder_outlives_failed_folds_and_says_so_once(
        container: Container, ruleset_id: int, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    real, failures = rollup_fold.fold_pending, [0]

    def failing_three_times(engine: Engine, **kwargs: Any) -> int:
        if failures[0] < 3:
            failures[0] += 1
            raise OperationalError("DELETE", {}, Exception("the database is away"))
        return real(engine, **kwargs)

    monkeypatch.setattr(rollup_fold, "fold_pending", failing_three_times)
    _write(container.engine, _records(ruleset_id, 0, 5))
    folder = RollupFolder(container.engine, interval_s=0.01)
    with caplog.at_level(logging.INFO, logger=rollup_fold.__name__):
        folder.start()
        try:
            deadline = time.monotonic() + 30
            while _counted(container.engine)[1] < 5:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            folder.close()
    messages = [r.getMessage() for r in caplog.records]
    assert failures[0] == 3 and folder.folded == 5
    assert [m for m in messages if "failed" in m] == [
        "folding decisions into the rollups failed ((builtins.Exception) the database is "
        "away); trying again every 0.01 s"]
    assert messages[-1] == "folding decisions into the rollups works again"


def _metric(api: Api, name: str) -> float:
    text = api.get("/metrics", who="bot").get_data(as_text=True)
    [value] = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ")]
    return value


def test_metrics_show_the_decisions_not_yet_counted_and_how_long_the_oldest_waited(
        api: Api, container: Container) -> None:
    container.rollup_folder.close()  # the app's background fold would race the scrapes
    rollup_fold.fold_pending(container.engine)
    assert _metric(api, "rules_service_decisions_uncounted") == 0
    assert _metric(api, "rules_service_decisions_uncounted_oldest_seconds") == 0
    waited = container.live.clock() - timedelta(minutes=5)
    _write(container.engine, [replace(r, evaluated_at=waited)
                              for r in _records(_ruleset(container.engine), 0, 3)])
    assert _metric(api, "rules_service_decisions_uncounted") == 3
    assert 300 <= _metric(api, "rules_service_decisions_uncounted_oldest_seconds") < 600
    rollup_fold.fold_pending(container.engine)
    assert _metric(api, "rules_service_decisions_uncounted") == 0
