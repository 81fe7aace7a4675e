"""Shadow mode's rules (sampling, settings, authority, tallies, alerts) and its use cases on
the fake unit of work: no database, no Flask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain.errors import Conflict, Forbidden, NotFound, RequestInvalid
from rules_service.domain.shadow import (
    ALERT_MIN_DECISIONS,
    ResultCount,
    ResultState,
    ShadowResult,
    ShadowTally,
    in_sample,
    settings_problems,
)
from rules_service.services import shadow
from tests.unit.fakes import FakeEvaluator, FakeUnitOfWork, staffed_unit_of_work
from tests.unit.test_governance_services import NAME, PEOPLE, active_v1, propose, sign

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return staffed_unit_of_work(PEOPLE)


@pytest.fixture
def evaluator() -> FakeEvaluator:
    return FakeEvaluator()

# --------------------------------------------------------------------------- sampling


@given(st.uuids(), st.floats(min_value=0.001, max_value=1.0),
       st.floats(min_value=0.001, max_value=1.0))
def test_a_decision_in_a_smaller_sample_is_in_every_larger_one(
        decision: uuid.UUID, a: float, b: float) -> None:
    small, large = sorted((a, b))
    if in_sample(str(decision), small):
        assert in_sample(str(decision), large)
    assert in_sample(str(decision), small) == in_sample(str(decision), small)


def test_the_sample_is_close_to_its_share_and_everything_at_one() -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 13)) for i in range(4000)]
    assert all(in_sample(i, 1.0) for i in ids)
    share = sum(in_sample(i, 0.25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28


def test_bad_settings_are_each_named() -> None:
    problems = settings_problems(0, 1.0)
    assert [p.place for p in problems] == ["sample", "alert_above"]
    assert [p.place for p in settings_problems(True, "0.1")] == ["sample", "alert_above"]
    assert [p.place for p in settings_problems(float("nan"), None)] == ["sample"]
    assert settings_problems(1, None) == [] and settings_problems(0.01, 0.0) == []


# --------------------------------------------------------------------------- tallies


def test_the_tally_counts_decided_refused_and_shed_apart() -> None:
    tally = ShadowTally.of([
        ResultCount(ResultState.DECIDED, "escalate", "approve", False, 3),
        ResultCount(ResultState.DECIDED, "approve", "approve", False, 5),
        ResultCount(ResultState.DECIDED, "approve", "escalate", True, 1),
        ResultCount(ResultState.REFUSED, "approve", None, False, 2),
        ResultCount(ResultState.SHED, "", None, False, 4),
    ])
    assert (tally.decisions, tally.disagreements, tally.input_rejected, tally.fallbacks,
            tally.not_shadowed) == (11, 4, 2, 1, 4)
    assert tally.by_change == {"escalate->approve": 3, "approve->escalate": 1}
    assert list(tally.by_change) == ["escalate->approve", "approve->escalate"]
    assert tally.disagreement_rate == pytest.approx(4 / 9)


def test_divergence_needs_enough_decisions_and_a_rate_above_the_threshold() -> None:
    def tally(agree: int, differ: int) -> ShadowTally:
        return ShadowTally.of([
            ResultCount(ResultState.DECIDED, "approve", "approve", False, agree),
            ResultCount(ResultState.DECIDED, "approve", "reject", False, differ)])

    assert not tally(0, ALERT_MIN_DECISIONS - 1).diverged(0.1)
    assert tally(ALERT_MIN_DECISIONS - 3, 3).diverged(0.1)
    assert not tally(90, 10).diverged(0.1)  # exactly at the threshold is not above it
    assert not tally(0, 100).diverged(None)


def test_a_result_disagrees_only_when_decided_otherwise() -> None:
    assert ShadowResult("d", AT, ResultState.DECIDED, "approve", "reject").disagrees
    assert not ShadowResult("d", AT, ResultState.DECIDED, "approve", "approve").disagrees
    assert not ShadowResult("d", AT, ResultState.REFUSED, "approve").disagrees
    assert not ShadowResult("d", AT, ResultState.SHED, "").disagrees


# --------------------------------------------------------------------------- use cases


def with_pending_v2(uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)


@pytest.mark.parametrize("who", ["dev", "biz-backup", "ops", "appr", "root"])
def test_the_author_an_owner_or_an_admin_starts_a_shadow(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, who: str) -> None:
    with_pending_v2(uow, evaluator)
    report = shadow.start_shadow(uow, NAME, 2, sample=0.5, actor=who)
    assert report.to_dict()["version"] == 2 and report.to_dict()["sample"] == 0.5
    assert report.to_dict()["decisions"] == 0 and report.shadow.started_by == who
    assert [s.version for s in shadow.running_shadows(uow)] == [2]


@pytest.mark.parametrize("who", ["stranger", "bot"])
def test_others_may_not_start_or_stop_a_shadow(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, who: str) -> None:
    with_pending_v2(uow, evaluator)
    with pytest.raises(Forbidden):
        shadow.start_shadow(uow, NAME, 2, sample=1, actor=who)
    shadow.start_shadow(uow, NAME, 2, sample=1, actor="dev")
    with pytest.raises(Forbidden):
        shadow.stop_shadow(uow, NAME, 2, actor=who)
    assert shadow.running_shadows(uow)


def test_only_the_business_owner_or_an_admin_sets_the_alert(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with_pending_v2(uow, evaluator)
    with pytest.raises(Forbidden, match="business_owner"):
        shadow.start_shadow(uow, NAME, 2, sample=1, alert_above=0.1, actor="dev")
    assert shadow.start_shadow(uow, NAME, 2, sample=1, alert_above=0.1,
                               actor="biz").shadow.alert_above == 0.1


def test_bad_settings_store_nothing(uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with_pending_v2(uow, evaluator)
    with pytest.raises(RequestInvalid) as caught:
        shadow.start_shadow(uow, NAME, 2, sample=1.5, alert_above=-1, actor="root")
    assert [p.place for p in caught.value.problems] == ["sample", "alert_above"]
    assert uow.store.shadows == []


def test_only_a_pending_or_approved_version_runs_in_shadow(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with_pending_v2(uow, evaluator)
    with pytest.raises(Conflict) as caught:
        shadow.start_shadow(uow, NAME, 1, sample=1, actor="root")  # the active one
    assert caught.value.code == "not_shadowable"
    with pytest.raises(NotFound):
        shadow.start_shadow(uow, NAME, 9, sample=1, actor="root")


def test_a_shadow_never_started_is_not_found_and_a_stopped_one_stays_readable(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with_pending_v2(uow, evaluator)
    with pytest.raises(NotFound, match="never in shadow"):
        shadow.get_shadow(uow, NAME, 2)
    with pytest.raises(NotFound, match="not in shadow"):
        shadow.stop_shadow(uow, NAME, 2, actor="root")
    shadow.start_shadow(uow, NAME, 2, sample=1, actor="dev")
    shadow.stop_shadow(uow, NAME, 2, actor="dev")
    body = shadow.get_shadow(uow, NAME, 2).to_dict()
    assert (body["running"], body["end_reason"], body["ended_by"]) == (False, "stopped", "dev")
    assert shadow.running_shadows(uow) == []


def test_starting_again_restarts_from_zero(uow: FakeUnitOfWork,
                                           evaluator: FakeEvaluator) -> None:
    with_pending_v2(uow, evaluator)
    first = shadow.start_shadow(uow, NAME, 2, sample=1, actor="dev").shadow
    uow.store.shadow_results.append(
        (first.id, ShadowResult("d1", AT, ResultState.DECIDED, "escalate", "approve")))
    assert shadow.get_shadow(uow, NAME, 2).to_dict()["disagreements"] == 1
    shadow.start_shadow(uow, NAME, 2, sample=0.5, actor="dev")
    body = shadow.get_shadow(uow, NAME, 2).to_dict()
    assert (body["sample"], body["decisions"], body["running"]) == (0.5, 0, True)
    assert uow.store.shadows[0].end_reason == "restarted"


@pytest.mark.parametrize("end", ["withdrawn", "rejected", "activated"])
def test_withdrawal_rejection_and_activation_end_the_shadow(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, end: str) -> None:
    with_pending_v2(uow, evaluator)
    shadow.start_shadow(uow, NAME, 2, sample=1, actor="dev")
    if end == "withdrawn":
        from rules_service.services import governance

        governance.withdraw_version(uow, NAME, 2, actor="dev")
    elif end == "rejected":
        sign(uow, 2, "biz", "reject")
    else:
        sign(uow, 2, "biz")
        sign(uow, 2, "appr")
    body = shadow.get_shadow(uow, NAME, 2).to_dict()
    assert (body["running"], body["end_reason"]) == (False, end)
    assert shadow.running_shadows(uow) == []
    with pytest.raises(Conflict):
        shadow.start_shadow(uow, NAME, 2, sample=1, actor="dev")


OUTCOMES = ("approve", "escalate", "reject")
RESULTS = st.lists(st.tuples(st.sampled_from(list(ResultState)), st.sampled_from(OUTCOMES),
                             st.sampled_from(OUTCOMES), st.booleans()), max_size=60)


@given(RESULTS)
def test_the_tally_of_grouped_counts_equals_counting_results_one_by_one(
        results: list[tuple[ResultState, str, str, bool]]) -> None:
    one_by_one = [ShadowResult(f"d{i}", AT, state, active,
                               shadowed if state is ResultState.DECIDED else None,
                               fallback and state is ResultState.DECIDED)
                  for i, (state, active, shadowed, fallback) in enumerate(results)]
    grouped: dict[tuple[ResultState, str, str | None, bool], int] = {}
    for r in one_by_one:
        key = (r.state, r.active_outcome, r.shadow_outcome, r.fallback)
        grouped[key] = grouped.get(key, 0) + 1
    tally = ShadowTally.of(ResultCount(*key, n) for key, n in grouped.items())
    assert tally.disagreements == sum(r.disagrees for r in one_by_one)
    assert tally.decisions == sum(r.state is not ResultState.SHED for r in one_by_one)
    assert tally.not_shadowed == sum(r.state is ResultState.SHED for r in one_by_one)
    assert sum(tally.by_change.values()) == tally.disagreements
    assert tally.input_rejected == sum(r.state is ResultState.REFUSED for r in one_by_one)
