"""Many rows at once (``adapters.bulk_insert``): COPY on PostgreSQL from ``COPY_FROM`` rows,
INSERT below it and on SQLite; either way each row reads back as it was given, whatever
its JSON holds (tabs, newlines, backslashes, quotes, any character, nesting, nulls)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from rules_service.adapters import bulk_insert
from rules_service.adapters.decision_log import (
    DECISIONS,
    ESCALATIONS,
    EscalationRecord,
    write_decisions,
)
from rules_service.adapters.orm import OutboxEventRow, RulesetRow
from rules_service.bootstrap import Container
from tests.integration.test_rollup_fold import _records

AT = datetime(2026, 12, 3, 1, 2, 3, 456789, tzinfo=UTC)

# Any character PostgreSQL's text holds: no NUL, no lone surrogate.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53)
    | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12)


@pytest.fixture
def ruleset_id(container: Container) -> int:
    with container.engine.begin() as conn:
        return int(conn.execute(insert(RulesetRow).values(name="r", title="", created_at=AT)
                                .returning(RulesetRow.id)).scalar_one())


@pytest.fixture(params=["copy", "insert"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Both paths over the same rows: COPY (PostgreSQL) from one row, or INSERT always."""
    kept = bulk_insert.COPY_FROM
    bulk_insert.COPY_FROM = 1 if request.param == "copy" else 10 ** 9
    try:
        yield str(request.param)
    finally:
        bulk_insert.COPY_FROM = kept


def _stored_by(container: Container, copy_from: int,
               rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as read back after inserting them with ``COPY_FROM`` at ``copy_from``
    (rolled back afterwards), ids left out."""
    kept = bulk_insert.COPY_FROM
    bulk_insert.COPY_FROM = copy_from
    try:
        with container.engine.begin() as conn:
            bulk_insert.insert_rows(conn, DECISIONS, rows)
            stored = conn.execute(select(DECISIONS).order_by(DECISIONS.c.evaluated_at)
                                  ).mappings().all()
            conn.rollback()
    finally:
        bulk_insert.COPY_FROM = kept
    return [{k: v for k, v in row.items() if k != "id"} for row in stored]


@pytest.mark.postgres_only  # SQLite has INSERT only
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=st.lists(st.dictionaries(texts, json_values, max_size=5), min_size=1,
                       max_size=30),
       reason=st.none() | texts)
def test_copy_stores_each_decision_as_insert_does(container: Container, ruleset_id: int,
                                                  inputs: list[dict[str, Any]],
                                                  reason: str | None) -> None:
    rows = [{"id": str(uuid.uuid4()), "ruleset_id": ruleset_id, "version": 1, "input": data,
             "outcome": "approve", "fired_rules": [{"id": "a\tb", "why": data}],
             "deciding_rules": ["a\\b", "\n", "\\N"], "fallback": i % 2 == 0,
             "fallback_reason": reason, "caller": "bot\x7f\u00e9\t", "idempotency_key": None,
             "request_hash": None, "evaluated_at": AT + timedelta(microseconds=i),
             "duration_ms": 0.1 * i} for i, data in enumerate(inputs)]
    by_copy = _stored_by(container, 1, rows)
    assert by_copy == _stored_by(container, 10 ** 9, rows)
    assert [r["fallback_reason"] for r in by_copy] == [reason] * len(rows)
    assert [r["caller"] for r in by_copy] == ["bot\x7f\u00e9\t"] * len(rows)


def test_a_batch_of_decisions_with_escalations_is_written_whole(
        container: Container, ruleset_id: int, path: str) -> None:
    records = [replace(r, escalation=EscalationRecord(
        str(uuid.uuid4()), "approver", r.evaluated_at + timedelta(hours=4))) if i % 5 else r
        for i, r in enumerate(_records(ruleset_id, 0, 150))]
    with container.engine.begin() as conn:
        assert write_decisions(conn, records) == {r.id for r in records}
    with container.engine.connect() as conn:
        decisions = {row["id"]: row for row in conn.execute(select(DECISIONS)).mappings()}
        escalations = {row["decision_id"]: row for row in
                       conn.execute(select(ESCALATIONS)).mappings()}
        events = conn.execute(select(OutboxEventRow.type)).scalars().all()
    assert {i: dict(row) for i, row in decisions.items()} == {
        r.id: r.decision_row() for r in records}
    assert {i: (row["to_role"], row["due_at"], row["status"]) for i, row in
            escalations.items()} == {r.id: ("approver", r.escalation.due_at, "open")
                                     for r in records if r.escalation is not None}
    assert events == ["escalation.opened"] * 120


def _read_back(container: Container, write: Any, rows: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    with container.engine.begin() as conn:
        write(conn, rows)
        stored = conn.execute(select(DECISIONS).order_by(DECISIONS.c.id)).mappings().all()
        conn.rollback()
    return [dict(row) for row in stored]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=st.lists(st.dictionaries(texts, json_values, max_size=5), min_size=1,
                       max_size=5),
       reason=st.none() | texts, aware=st.booleans())
def test_the_compiled_insert_stores_each_row_as_sqlalchemys_insert_does(
        container: Container, ruleset_id: int, inputs: list[dict[str, Any]],
        reason: str | None, aware: bool) -> None:
    # Below COPY_FROM the INSERT is compiled once and sent as driver SQL with each column
    # type's bind processor: JSON, timestamps (naive ones are UTC) and nulls as SQLAlchemy
    # would bind them.
    at = AT if aware else AT.replace(tzinfo=None)
    rows = [{"id": f"{i:04d}{uuid.uuid4().hex}", "ruleset_id": ruleset_id, "version": 1,
             "input": data, "outcome": "approve", "fired_rules": [{"id": "a", "why": data}],
             "deciding_rules": ["a\\b", "\n"], "fallback": i % 2 == 0,
             "fallback_reason": reason, "caller": "bot\u00e9\t", "idempotency_key": None,
             "request_hash": None, "evaluated_at": at + timedelta(microseconds=i),
             "duration_ms": 0.1 * i} for i, data in enumerate(inputs)]
    compiled = _read_back(container, lambda c, r: bulk_insert.insert_rows(c, DECISIONS, r),
                          rows)
    assert compiled == _read_back(container, lambda c, r: c.execute(insert(DECISIONS), r),
                                  rows)
    assert [r["evaluated_at"].tzinfo for r in compiled] == [UTC] * len(rows)


def test_the_compiled_insert_fills_the_columns_a_row_leaves_to_their_defaults(
        container: Container, ruleset_id: int) -> None:
    [record] = _records(ruleset_id, 0, 1)
    record = replace(record, escalation=EscalationRecord("e-1", "approver", None))
    with container.engine.begin() as conn:
        write_decisions(conn, [record])
        escalation = conn.execute(select(ESCALATIONS)).mappings().one()
    assert (escalation["status"], escalation["comment"], escalation["steps_taken"]) == \
        ("open", "", 0)
