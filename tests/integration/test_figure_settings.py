"""The figures read two settings of a version's definition (the escalation response-time
target and the minutes saved per auto-decision) by JSON path instead of loading the whole
definition. Whatever shape those parts have, the database's answer must equal what the
domain reads from the whole definition as stored, on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from rules_service.adapters.orm import RulesetRow, VersionRow
from rules_service.bootstrap import Container
from rules_service.domain import figures

MISSING = object()
_names = itertools.count()

# Text the service stores: it refuses NUL and lone surrogates at its edge (PostgreSQL holds
# neither).
storable = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                   max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), storable)


def part(draw: st.DrawFn, key: str, values: st.SearchStrategy[Any]) -> Any:
    """A part of a definition in one of its shapes: missing, not a mapping, a mapping
    without ``key``, or a mapping holding ``key``."""
    shape = draw(st.sampled_from(["missing", "scalar", "without", "with", "with"]))
    if shape == "missing":
        return MISSING
    if shape == "scalar":
        return draw(scalars)
    return {"note": "kept"} if shape == "without" else {key: draw(values)}


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Definitions whose impact and runbook parts take every shape."""
    definition: dict[str, Any] = {"name": "x", "rules": [{"id": "r", "when": "true"}]}
    impact = part(draw, "minutes_saved_per_auto_decision", scalars)
    if impact is not MISSING:
        definition["impact"] = impact
    escalation = part(draw, "response_time_target",
                      st.one_of(st.sampled_from(["4h", "30m", "2d", ""]), scalars))
    if escalation is not MISSING:
        definition["runbook"] = {"escalation": escalation}
    elif draw(st.booleans()):
        definition["runbook"] = draw(st.one_of(scalars, st.just({})))
    return definition


def _store(container: Container, definition: dict[str, Any]) -> int:
    """A ruleset whose active version 1 has ``definition``."""
    now = datetime.now(UTC)
    with container.engine.begin() as conn:
        rid = conn.execute(insert(RulesetRow).values(
            name=f"settings-{next(_names)}", created_at=now).returning(RulesetRow.id)
        ).scalar_one()
        conn.execute(insert(VersionRow).values(
            ruleset_id=rid, number=1, status="active", content="", definition=definition,
            content_hash="h", author="a", note="", created_at=now))
    return int(rid)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definition=definitions())
def test_the_settings_read_by_path_are_those_of_the_whole_definition(
        container: Container, definition: dict[str, Any]) -> None:
    rid = _store(container, definition)
    try:
        uow = container.uow()
        with uow.readonly():
            state = uow.figures.version_states([rid])[rid]
            minutes = uow.figures.minutes_saved_by_version([(rid, 1)])
            # As stored: PostgreSQL's jsonb keeps numbers its own way (-0.0 reads 0.0).
            whole = uow.session.scalars(
                select(VersionRow.definition).where(VersionRow.ruleset_id == rid)).one()
        assert state.active_version == 1
        assert state.response_time_target == figures.response_time_target(whole)
        expected = figures.minutes_saved_per_auto_decision(whole)
        assert state.minutes_saved_per_auto_decision == expected
        assert minutes == {(rid, 1): expected}
    finally:
        with container.engine.begin() as conn:
            conn.execute(delete(RulesetRow).where(RulesetRow.id == rid))
