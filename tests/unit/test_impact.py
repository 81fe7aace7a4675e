"""Impact replay: how many recorded decisions a proposed version would decide differently."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain.decision import Evaluation
from rules_service.domain.errors import InputInvalid
from rules_service.domain.impact import RecordedDecision, replay_impact
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome

A, E, R = Outcome.APPROVE, Outcome.ESCALATE, Outcome.REJECT


def proposed(data: Mapping[str, Any]) -> Outcome:
    """The proposed version: limit lowered from 500 to 100; no negative amounts."""
    amount = data["amount"]
    if amount < 0:
        raise InputInvalid([Problem("input.amount", "must be at least 0")])
    return A if amount <= 100 else E


def recorded(amounts: list[float]) -> list[RecordedDecision]:
    """Decisions made by the active version (limit 500)."""
    return [RecordedDecision(f"d{i}", {"amount": a}, A if a <= 500 else E)
            for i, a in enumerate(amounts)]


def test_counts_changed_outcomes_by_transition() -> None:
    report = replay_impact(recorded([50, 150, 300, 900]), proposed)
    assert report.replayed == 4
    assert report.changed == 2 and report.unchanged == 2
    assert report.transitions == {"approve->escalate": 2}
    assert [(e.decision_id, e.before, e.after) for e in report.examples] == [
        ("d1", A, E), ("d2", A, E)]
    assert report.examples[0].input == {"amount": 150}


def test_nothing_changes_when_the_proposed_version_decides_alike() -> None:
    report = replay_impact(recorded([50, 900]), lambda d: A if d["amount"] <= 500 else E)
    assert report.to_dict() == {"replayed": 2, "changed": 0, "unchanged": 2,
                                "input_rejected": 0, "fallbacks": 0, "transitions": {},
                                "examples": [], "rejected_examples": [], "drift": 0,
                                "drift_transitions": {}, "base_rejected": 0}


def test_inputs_the_new_schema_rejects_are_counted_not_raised() -> None:
    report = replay_impact(recorded([-5, 50, -1]), proposed)
    assert report.replayed == 3 and report.input_rejected == 2
    assert report.changed == 0 and report.unchanged == 1
    assert report.rejected_examples[0].decision_id == "d0"
    assert report.rejected_examples[0].reason == "input.amount: must be at least 0"


def test_other_exceptions_are_bugs_and_propagate() -> None:
    def broken(data: Mapping[str, Any]) -> Outcome:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        replay_impact(recorded([1]), broken)


def test_the_rejected_exception_types_can_be_chosen() -> None:
    def strict(data: Mapping[str, Any]) -> Outcome:
        raise ValueError("amount missing")

    report = replay_impact(recorded([1, 2]), strict, rejected=(ValueError,))
    assert report.input_rejected == 2
    assert report.rejected_examples[1].reason == "amount missing"


def test_at_most_five_examples_spread_over_transitions() -> None:
    decisions = [RecordedDecision(f"a{i}", {"n": i}, A) for i in range(20)]
    decisions.append(RecordedDecision("rare", {"n": 99}, E))

    def flip(data: Mapping[str, Any]) -> Outcome:
        return R if data["n"] == 99 else E

    report = replay_impact(decisions, flip)
    assert report.changed == 21
    assert report.transitions == {"approve->escalate": 20, "escalate->reject": 1}
    assert list(report.transitions) == ["approve->escalate", "escalate->reject"]
    assert len(report.examples) == 5
    # The one rare transition is shown even though it came last.
    assert "rare" in [e.decision_id for e in report.examples]


def test_accepts_evaluations_strings_and_plain_dict_records() -> None:
    records = [{"decision_id": "x", "input": {"amount": 700}, "outcome": "escalate"},
               {"decision_id": "y", "input": {"amount": 70}, "outcome": "approve"}]

    def evaluate(data: Mapping[str, Any]) -> Evaluation:
        outcome = R if data["amount"] > 500 else A
        return Evaluation(outcome, (), (), fallback=data["amount"] == 70)

    report = replay_impact(records, evaluate)
    assert report.transitions == {"escalate->reject": 1}
    assert report.fallbacks == 1
    assert replay_impact(records, lambda d: "approve").transitions == {"escalate->approve": 1}


def test_a_record_without_an_input_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(KeyError, match="input"):
        replay_impact([{"decision_id": "x", "outcome": "approve"}], proposed)


def test_report_is_json_serialisable() -> None:
    report = replay_impact(recorded([-1, 50, 300, 600]), proposed)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["changed"] == 1 and data["input_rejected"] == 1
    assert data["examples"] == [{"decision_id": "d2", "input": {"amount": 300},
                                 "before": "approve", "after": "escalate",
                                 "recorded": "approve"}]
    assert data["rejected_examples"][0]["before"] == "approve"


def test_replays_a_generator_without_holding_it() -> None:
    # The service streams recorded decisions; replay must not need a list.
    stream = (RecordedDecision(str(i), {"amount": i}, A) for i in range(1000))
    report = replay_impact(stream, proposed)
    assert report.replayed == 1000 and report.changed == 899
    assert len(report.examples) == 5


def lowered_manager_limit(limit: float) -> Any:
    """A version that escalates above ``limit`` and approves the rest."""
    return lambda data: E if data["amount"] > limit else A


def test_a_change_is_blamed_only_for_what_it_changes_between_from_and_to() -> None:
    # Recorded under an older version that escalated above 500; the active (from) version
    # escalates above 5000 since an earlier change; the proposal lowers that to 4000.
    records = [RecordedDecision("meal", {"amount": 550}, E),
               RecordedDecision("laptop", {"amount": 4500}, E),
               RecordedDecision("coffee", {"amount": 5}, A)]
    report = replay_impact(records, lowered_manager_limit(4000),
                           decide_before=lowered_manager_limit(5000))
    assert report.transitions == {"approve->escalate": 1}
    assert [e.decision_id for e in report.examples] == ["laptop"]
    assert (report.examples[0].recorded, report.examples[0].before) == (E, A)
    # The 550 meal and the laptop changed before this proposal: drift, not its impact.
    assert report.drift == 2 and report.drift_transitions == {"escalate->approve": 2}
    assert report.changed == 1 and report.unchanged == 2


def test_without_a_from_version_the_recorded_outcomes_are_the_baseline() -> None:
    report = replay_impact(recorded([50, 900]), lambda d: A)
    assert report.transitions == {"escalate->approve": 1} and report.drift == 0


def test_inputs_the_from_version_refuses_are_counted_apart() -> None:
    def old(data: Mapping[str, Any]) -> Outcome:
        if "currency" not in data:
            raise InputInvalid([Problem("input.currency", "is required")])
        return A

    records = [RecordedDecision("a", {"amount": 1}, A),
               RecordedDecision("b", {"amount": 1, "currency": "EUR"}, A)]
    report = replay_impact(records, lambda d: E, decide_before=old)
    assert report.base_rejected == 1 and report.changed == 1 and report.unchanged == 0


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
       st.integers(min_value=0, max_value=10_000))
def test_replaying_a_version_against_itself_changes_nothing(amounts: list[int],
                                                            limit: int) -> None:
    same = lowered_manager_limit(limit)
    report = replay_impact(recorded([float(a) for a in amounts]), same, decide_before=same)
    assert report.changed == 0 and report.transitions == {}
    assert report.unchanged == len(amounts)
