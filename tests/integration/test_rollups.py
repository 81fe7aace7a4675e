"""The rollups are the decisions counted, exactly: after single evaluations, batches,
fallbacks, escalations, resolutions and idempotent replays, every rollup table equals
what a scan of the decisions and escalations gives; the backfill migration rebuilds the
same rows from the recorded decisions; the schema the migrations build is the ORM's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import sqlite

from rules_service.adapters import migrations_runner, partitions, rollup_fold, rollups
from rules_service.adapters.orm import (
    CYCLE_COLUMNS,
    HISTOGRAM_COLUMNS,
    Base,
    DecisionRow,
    EscalationRow,
    RulesetRow,
    decision_totals,
)
from rules_service.adapters.rollups import DECISION_TIERS, ESCALATION_TIERS, MINUTE, floor_to
from rules_service.bootstrap import Container
from rules_service.domain import figures
from rules_service.domain.decision import Evaluation, decide, fallback
from rules_service.domain.ruleset import Ruleset
from rules_service.services import dashboard, decisions, evaluation, governance
from tests.integration.conftest import FakeClock, definition

Rows = dict[tuple[Any, ...], dict[str, Any]]
START = datetime(2026, 11, 30, 17, 3, 5, tzinfo=UTC)


class ScriptedEngine:
    """Stands in for the engine: the amount picks the rule, 13 makes it fall back, and
    the duration follows the amount, so latencies spread over many buckets."""

    def _one(self, ruleset: Ruleset, data: dict[str, Any]) -> Evaluation:
        amount = float(data["amount"])
        duration = round((amount * 7.31) % 3000 / 10 ** (int(amount) % 4), 3)
        if amount == 13:
            return fallback(ruleset, "engine timeout", data, duration)
        fired = ["small"] if amount <= 100 else ["huge"] if amount > 100000 else []
        return decide(ruleset, fired, data, duration)

    def evaluate(self, ruleset: Ruleset, data: dict[str, Any]) -> Evaluation:
        """One scripted decision."""
        return self._one(ruleset, data)

    def evaluate_many(self, ruleset: Ruleset, inputs: Sequence[dict[str, Any]]
                      ) -> list[Evaluation]:
        """Scripted decisions, in order."""
        return [self._one(ruleset, data) for data in inputs]


def _empty_decision_sums() -> dict[str, Any]:
    return {"count": 0, "duration_sum": 0.0, "duration_max": 0.0,
            **dict.fromkeys(HISTOGRAM_COLUMNS, 0)}


def _empty_resolution_sums() -> dict[str, Any]:
    return {"resolved": 0, "resolved_with_target": 0, "resolved_within_target": 0,
            "seconds_sum": 0.0, "seconds_max": 0.0, **dict.fromkeys(CYCLE_COLUMNS, 0)}


def _scan(connection: Connection) -> dict[str, Rows]:
    """Every rollup table as worked out from a scan of the decisions and escalations."""
    out: dict[str, Rows] = {name: defaultdict(_empty_decision_sums) for name in
                            [t.table.name for t in DECISION_TIERS] + ["decision_totals"]}
    out.update({t.table.name: defaultdict(_empty_resolution_sums) for t in ESCALATION_TIERS})
    d = DecisionRow
    for rid, version, outcome, fallback_, at, ms in connection.execute(select(
            d.ruleset_id, d.version, d.outcome, d.fallback, d.evaluated_at, d.duration_ms)):
        kind = (version, outcome, bool(fallback_))
        for sums in [out[t.table.name][(rid, floor_to(at, t.unit), *kind)]
                     for t in DECISION_TIERS] + [out["decision_totals"][(rid, *kind)]]:
            sums["count"] += 1
            sums["duration_sum"] += ms
            sums["duration_max"] = max(sums["duration_max"], ms)
            sums[HISTOGRAM_COLUMNS[figures.latency_bucket(ms)]] += 1
    e = EscalationRow
    for rid, created, resolved, due in connection.execute(
            select(e.ruleset_id, e.created_at, e.resolved_at, e.due_at)
            .where(e.status == "resolved")):
        seconds = (resolved - created).total_seconds()
        for t in ESCALATION_TIERS:
            sums = out[t.table.name][(rid, floor_to(resolved, t.unit))]
            sums["resolved"] += 1
            sums["resolved_with_target"] += due is not None
            sums["resolved_within_target"] += due is not None and resolved <= due
            sums["seconds_sum"] += seconds
            sums["seconds_max"] = max(sums["seconds_max"], seconds)
            sums[CYCLE_COLUMNS[figures.cycle_bucket(seconds)]] += 1
    return {name: dict(rows) for name, rows in out.items()}


def _read(connection: Connection, table: Table) -> Rows:
    keys = [c.name for c in table.primary_key.columns]
    out: Rows = {}
    for row in connection.execute(select(table)).mappings():
        values = dict(row)
        key = tuple(floor_to(values.pop(k), MINUTE) if k == "bucket_start" else values.pop(k)
                    for k in keys)
        out[key] = values
    return out


def _same(actual: Rows, expected: Rows) -> None:
    assert set(actual) == set(expected)
    for key, figures_ in expected.items():
        # Sums of floats may differ in the last bits with the order of addition.
        assert actual[key] == {k: pytest.approx(v) if isinstance(v, float) else v
                               for k, v in figures_.items()}, key


ALL_TABLES: list[Table] = [t.table for t in DECISION_TIERS + ESCALATION_TIERS] + [
    decision_totals]


def _rollups(connection: Connection) -> dict[str, Rows]:
    return {t.name: _read(connection, t) for t in ALL_TABLES}


def _assert_rollups_equal_a_scan(container: Container) -> dict[str, Rows]:
    with container.engine.connect() as connection:
        expected = _scan(connection)
        stored = _rollups(connection)
    assert set(stored) == set(expected)
    for name, rows in expected.items():
        _same(stored[name], rows)
    return stored


@pytest.fixture
def busy(container: Container, people: dict[str, str], clock: FakeClock) -> Container:
    """A ruleset with two live versions and a day of mixed traffic: single evaluations,
    batches, fallbacks, escalations, resolutions and idempotent replays."""
    uow, engine = container.uow, ScriptedEngine()
    writer = (container.live, container.decision_store)  # the group-commit write path
    clock.now = START  # the traffic runs across midnight: minutes, hours and two days
    governance.propose_version(uow(), engine, "refunds", actor="root", definition=definition())
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="biz")
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="appr")
    for step in range(40):
        if step == 20:  # version 2 takes over half-way through
            governance.propose_version(uow(), engine, "refunds", actor="dev",
                                       definition=definition(200))
            governance.sign_off(uow(), "refunds", 2, decision="approve", actor="biz")
            governance.sign_off(uow(), "refunds", 2, decision="approve", actor="appr")
        amount = (step * 37) % 250 if step % 5 else 13 + (step % 2) * 200000
        key = f"k{step}" if step % 3 else None
        first = evaluation.evaluate(*writer, engine, "refunds", {"amount": amount},
                                    caller="bot", idempotency_key=key)
        if key is not None:  # the same request again: replayed, so counted once
            again = evaluation.evaluate(*writer, engine, "refunds", {"amount": amount},
                                        caller="bot", idempotency_key=key)
            assert isinstance(again, decisions.DecisionView) and again.replayed
            assert isinstance(first, decisions.DecisionView)
            assert again.decision_id == first.decision_id
        if step % 6 == 0:
            evaluation.evaluate_batch(*writer, engine, "refunds",
                                      [{"amount": a} for a in (1, 13, 150, 999999, step + 0.5)],
                                      caller="bot")
            evaluation.evaluate(*writer, engine, "refunds", {"amount": 2}, caller="bot",
                                dry_run=True)
        if step % 9 == 4:
            for open_ in decisions.list_escalations(uow(), status="open")[:2]:
                decisions.resolve_escalation(uow(), open_.id, resolution="approve",
                                             actor="appr")
        clock.advance(timedelta(minutes=17, seconds=41))
    rollup_fold.fold_pending(container.engine)
    return container


def test_rollups_equal_a_scan_of_the_decisions_after_mixed_traffic(busy: Container) -> None:
    stored = _assert_rollups_equal_a_scan(busy)
    with busy.engine.connect() as connection:
        recorded = connection.execute(select(DecisionRow.id)).all()
    # The traffic really was mixed: every kind of bucket is there, replays counted once.
    totals = stored["decision_totals"]
    assert sum(t["count"] for t in totals.values()) == len(recorded)
    assert {(k[1], k[2], k[3]) for k in totals} >= {
        (1, "approve", False), (1, "escalate", True), (2, "escalate", False),
        (2, "approve", False)}
    assert len(stored["decision_rollups_daily"]) < len(stored["decision_rollups_hourly"]) \
        < len(stored["decision_rollups"])
    assert sum(r["resolved"] for r in stored["escalation_rollups"].values()) >= 4


@pytest.mark.parametrize(("since", "until"), [
    (START - timedelta(days=3), START + timedelta(days=3)),  # everything, whole days
    (START + timedelta(hours=2, minutes=7), START + timedelta(hours=9, minutes=41)),
    (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), datetime(2026, 12, 1, 1, 0, tzinfo=UTC)),
    (START + timedelta(minutes=30), START + timedelta(minutes=59)),  # minutes only
    (datetime(2026, 11, 30, 23, 17, tzinfo=UTC), datetime(2026, 12, 2, 0, 3, tzinfo=UTC)),
])
def test_the_dashboard_counts_what_a_scan_of_the_windows_whole_minutes_counts(
        busy: Container, since: datetime, until: datetime) -> None:
    figures_ = dashboard.dashboard(busy.uow(), since=since, until=until)["overall"]
    # The window in whole minutes, both ends rounded down, as the dashboard reads it.
    since, until = floor_to(since, MINUTE), floor_to(until, MINUTE)
    with busy.engine.connect() as connection:
        d = DecisionRow
        rows = connection.execute(select(d.outcome, d.fallback, d.duration_ms)
                                  .where(d.evaluated_at >= since, d.evaluated_at < until)).all()
        e = EscalationRow
        resolved = connection.execute(select(e.created_at, e.resolved_at).where(
            e.resolved_at >= since, e.resolved_at < until)).all()
    assert figures_["decisions"]["count"] == len(rows)
    assert {o: f["count"] for o, f in figures_["outcomes"].items()} == {
        o: sum(1 for r in rows if r.outcome == o) for o in ("approve", "escalate", "reject")}
    assert figures_["fallbacks"]["count"] == sum(1 for r in rows if r.fallback)
    durations = [r.duration_ms for r in rows]
    assert figures_["latency_ms"]["max"] == (max(durations) if durations else None)
    for p in (50, 95, 99):
        value = figures_["latency_ms"][f"p{p}"]
        exact = figures.percentile(durations, p)
        assert (value is None) == (exact is None)
        if exact is not None:  # the promise: same histogram bucket as the exact value
            assert figures.latency_bucket(value) == figures.latency_bucket(exact)
    assert figures_["escalations"]["resolved"] == len(resolved)


def test_an_idempotent_replay_changes_no_rollup(busy: Container, clock: FakeClock) -> None:
    with busy.engine.connect() as connection:
        before = _rollups(connection)
    replay = evaluation.evaluate(busy.live, busy.decision_store, ScriptedEngine(), "refunds",
                                 {"amount": 37}, caller="bot", idempotency_key="k1")
    assert isinstance(replay, decisions.DecisionView) and replay.replayed
    assert rollup_fold.fold_pending(busy.engine) == 0
    with busy.engine.connect() as connection:
        assert _rollups(connection) == before


def test_a_refused_idempotency_conflict_and_a_dry_run_count_nothing(busy: Container) -> None:
    with busy.engine.connect() as connection:
        before = _rollups(connection)
    with pytest.raises(Exception, match="idempotency key"):
        evaluation.evaluate(busy.live, busy.decision_store, ScriptedEngine(), "refunds",
                            {"amount": 77777}, caller="bot", idempotency_key="k1")
    evaluation.evaluate(busy.live, busy.decision_store, ScriptedEngine(), "refunds",
                        {"amount": 5}, caller="bot", dry_run=True)
    assert rollup_fold.fold_pending(busy.engine) == 0
    with busy.engine.connect() as connection:
        assert _rollups(connection) == before


def test_writing_the_same_decisions_in_one_call_or_many_gives_the_same_rollups(
        container: Container, people: dict[str, str]) -> None:
    governance.propose_version(container.uow(), ScriptedEngine(), "refunds", actor="root",
                               definition=definition())
    with container.engine.connect() as connection:
        rid = connection.execute(select(RulesetRow.id)).scalar_one()
    at = datetime(2026, 3, 1, 9, 59, 30, tzinfo=UTC)
    rolled = [rollups.RolledDecision(rid, 1, at + timedelta(seconds=20 * i),
                                     ("approve", "reject", "escalate")[i % 3], i % 4 == 0,
                                     0.01 * 3 ** (i % 11)) for i in range(60)]
    with container.engine.begin() as connection:
        rollups.add_decisions(connection, rolled)
        together = _rollups(connection)
        connection.rollback()
    with container.engine.begin() as connection:
        for one in reversed(rolled):
            rollups.add_decisions(connection, [one])
        one_by_one = _rollups(connection)
    for name, rows in together.items():
        _same(one_by_one[name], rows)
    assert sum(r["count"] for r in together["decision_totals"].values()) == 60


def test_the_backfill_migration_rebuilds_the_rollups_that_live_writing_made(
        busy: Container, database_url: str) -> None:
    live = _assert_rollups_equal_a_scan(busy)
    with busy.engine.begin() as connection:
        for table in ALL_TABLES:
            connection.execute(table.delete())
    busy.engine.dispose()  # SQLite: no connection of ours holds the file during DDL
    try:
        command.downgrade(migrations_runner.alembic_config(database_url), "0002")
    finally:
        migrations_runner.upgrade(database_url)
    with busy.engine.connect() as connection:
        rebuilt = _rollups(connection)
    for name, rows in live.items():
        _same(rebuilt[name], rows)


def test_the_migrations_build_the_schema_the_orm_describes(busy: Container) -> None:
    with busy.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": False, "include_name": partitions.include_name,
            "include_object": partitions.include_object})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_add_decisions_sends_one_upsert_per_table_with_its_keys_sorted() -> None:
    sent: list[tuple[str, list[dict[str, Any]]]] = []

    class Recorder:
        """A connection that only notes the SQL and parameters it is asked to run."""

        dialect = sqlite.dialect()

        def execute(self, statement: Any, parameters: list[dict[str, Any]]) -> None:
            sent.append((str(statement.compile(dialect=self.dialect)), parameters))

    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    rollups.add_decisions(Recorder(), [  # type: ignore[arg-type]
        rollups.RolledDecision(2, 1, at + timedelta(minutes=m), outcome, False, 1.0)
        for m, outcome in ((5, "approve"), (1, "reject"), (3, "approve"), (1, "approve"))])
    # days, hours, minutes, all-time totals
    assert [len(parameters) for _, parameters in sent] == [2, 2, 4, 2]
    assert all("ON CONFLICT" in sql and "DO UPDATE" in sql for sql, _ in sent)
    assert "max(decision_rollups.duration_max, excluded.duration_max)" in sent[2][0]
    minutes = [(p["bucket_start"].minute, p["outcome"]) for p in sent[2][1]]
    assert minutes == [(1, "approve"), (1, "reject"), (3, "approve"), (5, "approve")]
