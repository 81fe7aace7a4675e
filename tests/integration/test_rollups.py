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

from rules_service.adapters import rollups, schema
from rules_service.adapters.orm import (
    CYCLE_COLUMNS,
    HISTOGRAM_COLUMNS,
    Base,
    DecisionRow,
    EscalationRow,
    RulesetRow,
    decision_rollups,
    decision_rollups_hourly,
    decision_totals,
    escalation_rollups,
)
from rules_service.bootstrap import Container
from rules_service.domain import figures
from rules_service.domain.decision import Evaluation, decide, fallback
from rules_service.domain.ruleset import Ruleset
from rules_service.services import decisions, evaluation, governance
from tests.integration.conftest import FakeClock, definition

Rows = dict[tuple[Any, ...], dict[str, Any]]


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


def _minute(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(second=0, microsecond=0)


def _empty_decision_sums() -> dict[str, Any]:
    return {"count": 0, "duration_sum": 0.0, "duration_max": 0.0,
            **dict.fromkeys(HISTOGRAM_COLUMNS, 0)}


def _scan_decisions(connection: Connection) -> tuple[Rows, Rows, Rows]:
    """Minute, hour and all-time figures worked out from every decision row."""
    minutes: Rows = defaultdict(_empty_decision_sums)
    hours: Rows = defaultdict(_empty_decision_sums)
    totals: Rows = defaultdict(_empty_decision_sums)
    d = DecisionRow
    for rid, version, outcome, fallback_, at, ms in connection.execute(select(
            d.ruleset_id, d.version, d.outcome, d.fallback, d.evaluated_at, d.duration_ms)):
        kind = (version, outcome, bool(fallback_))
        for sums in (minutes[(rid, _minute(at), *kind)],
                     hours[(rid, _minute(at).replace(minute=0), *kind)],
                     totals[(rid, *kind)]):
            sums["count"] += 1
            sums["duration_sum"] += ms
            sums["duration_max"] = max(sums["duration_max"], ms)
            sums[HISTOGRAM_COLUMNS[figures.latency_bucket(ms)]] += 1
    return dict(minutes), dict(hours), dict(totals)


def _scan_resolutions(connection: Connection) -> Rows:
    """Per ruleset and minute of resolution, worked out from every resolved escalation."""
    out: Rows = defaultdict(lambda: {
        "resolved": 0, "resolved_with_target": 0, "resolved_within_target": 0,
        "seconds_sum": 0.0, "seconds_max": 0.0, **dict.fromkeys(CYCLE_COLUMNS, 0)})
    e = EscalationRow
    for rid, created, resolved, due in connection.execute(
            select(e.ruleset_id, e.created_at, e.resolved_at, e.due_at)
            .where(e.status == "resolved")):
        sums = out[(rid, _minute(resolved))]
        seconds = (resolved - created).total_seconds()
        sums["resolved"] += 1
        sums["resolved_with_target"] += due is not None
        sums["resolved_within_target"] += due is not None and resolved <= due
        sums["seconds_sum"] += seconds
        sums["seconds_max"] = max(sums["seconds_max"], seconds)
        sums[CYCLE_COLUMNS[figures.cycle_bucket(seconds)]] += 1
    return dict(out)


def _read(connection: Connection, table: Table) -> Rows:
    keys = [c.name for c in table.primary_key.columns]
    out: Rows = {}
    for row in connection.execute(select(table)).mappings():
        values = dict(row)
        key = tuple(_minute(values.pop(k)) if k == "bucket_start" else values.pop(k)
                    for k in keys)
        out[key] = values
    return out


def _same(actual: Rows, expected: Rows) -> None:
    assert set(actual) == set(expected)
    for key, figures_ in expected.items():
        # Sums of floats may differ in the last bits with the order of addition.
        assert actual[key] == {k: pytest.approx(v) if isinstance(v, float) else v
                               for k, v in figures_.items()}, key


def _rollups(connection: Connection) -> dict[str, Rows]:
    return {t.name: _read(connection, t) for t in
            (decision_rollups, decision_rollups_hourly, decision_totals, escalation_rollups)}


def _assert_rollups_equal_a_scan(container: Container) -> dict[str, Rows]:
    with container.engine.connect() as connection:
        minutes, hours, totals = _scan_decisions(connection)
        stored = _rollups(connection)
        _same(stored["decision_rollups"], minutes)
        _same(stored["decision_rollups_hourly"], hours)
        _same(stored["decision_totals"], totals)
        _same(stored["escalation_rollups"], _scan_resolutions(connection))
    return stored


@pytest.fixture
def busy(container: Container, people: dict[str, str], clock: FakeClock) -> Container:
    """A ruleset with two live versions and a day of mixed traffic: single evaluations,
    batches, fallbacks, escalations, resolutions and idempotent replays."""
    uow, engine = container.uow, ScriptedEngine()
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
        first = evaluation.evaluate(container.live, container.decision_store, engine, "refunds",
                                    {"amount": amount}, caller="bot", idempotency_key=key)
        if key is not None:  # the same request again: replayed, so counted once
            again = evaluation.evaluate(container.live, container.decision_store, engine, "refunds",
                                        {"amount": amount}, caller="bot", idempotency_key=key)
            assert isinstance(again, decisions.DecisionView) and again.replayed
            assert isinstance(first, decisions.DecisionView)
            assert again.decision_id == first.decision_id
        if step % 6 == 0:
            evaluation.evaluate_batch(container.live, container.decision_store, engine, "refunds",
                                      [{"amount": a} for a in (1, 13, 150, 999999, step + 0.5)],
                                      caller="bot")
            evaluation.evaluate(container.live, container.decision_store, engine, "refunds",
                                {"amount": 2}, caller="bot", dry_run=True)
        if step % 9 == 4:
            for open_ in decisions.list_escalations(uow(), status="open")[:2]:
                decisions.resolve_escalation(uow(), open_.id, resolution="approve",
                                             actor="appr")
        clock.advance(timedelta(minutes=17, seconds=41))
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
    assert len(stored["decision_rollups_hourly"]) < len(stored["decision_rollups"])
    assert sum(r["resolved"] for r in stored["escalation_rollups"].values()) >= 4


def test_an_idempotent_replay_changes_no_rollup(busy: Container, clock: FakeClock) -> None:
    with busy.engine.connect() as connection:
        before = _rollups(connection)
    replay = evaluation.evaluate(busy.live, busy.decision_store, ScriptedEngine(), "refunds",
                                 {"amount": 37}, caller="bot", idempotency_key="k1")
    assert isinstance(replay, decisions.DecisionView) and replay.replayed
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
        for table in (decision_rollups, decision_rollups_hourly, decision_totals,
                      escalation_rollups):
            connection.execute(table.delete())
    busy.engine.dispose()  # SQLite: no connection of ours holds the file during DDL
    try:
        command.downgrade(schema.alembic_config(database_url), "0002")
    finally:
        schema.upgrade(database_url)
    with busy.engine.connect() as connection:
        rebuilt = _rollups(connection)
    for name, rows in live.items():
        _same(rebuilt[name], rows)


def test_the_migrations_build_the_schema_the_orm_describes(busy: Container) -> None:
    with busy.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
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
    assert [len(parameters) for _, parameters in sent] == [4, 2, 2]  # minutes, hours, totals
    assert all("ON CONFLICT" in sql and "DO UPDATE" in sql for sql, _ in sent)
    assert "max(decision_rollups.duration_max, excluded.duration_max)" in sent[0][0]
    minutes = [(p["bucket_start"].minute, p["outcome"]) for p in sent[0][1]]
    assert minutes == [(1, "approve"), (1, "reject"), (3, "approve"), (5, "approve")]
