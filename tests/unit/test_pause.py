"""Pausing a ruleset and the review rhythm as domain rules, and the pause and resume use
cases on the fake unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain import review_rhythm
from rules_service.domain.decision import Evaluation, FiredRule
from rules_service.domain.errors import Conflict, Forbidden, RequestInvalid
from rules_service.domain.lifecycle import Actor
from rules_service.domain.pause import (
    Pause,
    check_can_pause,
    check_paused,
    may_pause,
    pause_reason,
    start,
    while_paused,
)
from rules_service.domain.ruleset import RUNBOOK_PARTS, Outcome, Ruleset
from rules_service.services import governance as gov
from tests.unit.fakes import FakeClock, FakeEvaluator, FakeUnitOfWork, staffed_unit_of_work
from tests.unit.test_governance_services import (
    NAME,
    PEOPLE,
    active_v1,
    definition,
    propose,
    sign,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def ruleset(**changes: object) -> Ruleset:
    fields: dict[str, object] = {
        "name": NAME, "title": "Refunds", "description": "", "owners": {}, "signoff": (),
        "thresholds": {}, "inputs": (), "rules": (), "default": Outcome.APPROVE,
        "fallback": Outcome.ESCALATE, **changes}
    return Ruleset(**fields)  # type: ignore[arg-type]


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWork:
    return staffed_unit_of_work(PEOPLE, clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def active(uow: FakeUnitOfWork) -> None:
    active_v1(uow, FakeEvaluator())


# --------------------------------------------------------------------------- the rules


@given(st.sampled_from(list(Outcome)), st.booleans(), st.text(min_size=1, max_size=40))
def test_a_paused_decision_escalates_to_the_approver_and_keeps_the_rules_answer(
        outcome: Outcome, fallback: bool, reason: str) -> None:
    decided = Evaluation(outcome, (FiredRule("r", outcome, "because"),), ("r",), fallback,
                         "engine down" if fallback else None,
                         "maintainer" if outcome is Outcome.ESCALATE else None, 1.5,
                         {"amount": 5})
    paused = while_paused(decided, Pause("ops", NOW, reason))
    assert paused.outcome is Outcome.ESCALATE
    assert paused.escalate_to == "approver"
    assert paused.deciding_rules == ()
    assert paused.paused and paused.paused_outcome is outcome
    assert paused.paused_reason == reason
    # What the rules saw and fired is kept, for comparison.
    assert (paused.fired_rules, paused.input, paused.fallback, paused.duration_ms) \
        == (decided.fired_rules, decided.input, decided.fallback, decided.duration_ms)
    assert not decided.paused


def test_a_pause_starts_once_and_ends_once() -> None:
    pause = start(None, "ops", "looking", NOW, NAME)
    assert pause == Pause("ops", NOW, "looking")
    with pytest.raises(Conflict) as refused:
        start(pause, "biz", "again", NOW, NAME)
    assert refused.value.code == "already_paused"
    assert "paused by ops since 2026-01-05 09:00 UTC: looking" in refused.value.message
    assert check_paused(pause, NAME) is pause
    with pytest.raises(Conflict) as not_paused:
        check_paused(None, NAME)
    assert not_paused.value.code == "not_paused"


@pytest.mark.parametrize("reason", [None, "", "   ", 5, "x" * 2001])
def test_a_pause_needs_a_readable_reason(reason: object) -> None:
    with pytest.raises(RequestInvalid) as refused:
        pause_reason(reason)
    assert [p.place for p in refused.value.problems] == ["reason"]


def test_the_reason_is_trimmed() -> None:
    assert pause_reason("  fraud wave \n") == "fraud wave"


def test_who_may_pause_is_who_may_roll_back() -> None:
    from rules_service.domain.ruleset import RoleHolders

    rs = ruleset(owners={"operations_owner": RoleHolders("ops", "ops-b"),
                         "business_owner": RoleHolders("biz", "biz-b"),
                         "approver": RoleHolders("appr", "appr-b"),
                         "maintainer": RoleHolders("dev", "dev-b")})
    allowed = {n for n in ("ops", "ops-b", "biz", "biz-b", "appr", "appr-b", "dev", "x")
               if may_pause(Actor(n), rs)}
    assert allowed == {"ops", "ops-b", "biz", "biz-b"}
    assert may_pause(Actor("root", is_admin=True), None)
    assert not may_pause(Actor("ops", is_automation=True), rs)
    assert not may_pause(Actor("ops"), None)
    with pytest.raises(Forbidden, match="automation"):
        check_can_pause(Actor("bot", is_automation=True), rs, NAME)
    with pytest.raises(Forbidden, match="dev is neither"):
        check_can_pause(Actor("dev"), rs, NAME)


def test_the_review_falls_due_a_rhythm_after_the_last_activation() -> None:
    rs = ruleset(review_every="90d")
    assert review_rhythm.due_at(rs, NOW) == NOW + timedelta(days=90)
    assert review_rhythm.due_at(ruleset(), NOW) is None
    assert review_rhythm.due_at(rs, None) is None
    later = NOW + timedelta(days=90)
    assert not review_rhythm.is_due(rs, NOW, later - timedelta(seconds=1))
    assert review_rhythm.is_due(rs, NOW, later)
    # Told once per activation: not again for the same one, again after a new one.
    assert review_rhythm.needs_telling(rs, NOW, None, later)
    assert not review_rhythm.needs_telling(rs, NOW, later, later + timedelta(days=1))
    assert review_rhythm.needs_telling(rs, later + timedelta(days=2),
                                       later, later + timedelta(days=93))
    assert not review_rhythm.needs_telling(ruleset(), NOW, None, later)


def test_a_runbook_names_the_parts_it_lacks_in_order() -> None:
    assert ruleset().runbook_gaps == RUNBOOK_PARTS
    full = {part: "x" for part in RUNBOOK_PARTS}
    assert ruleset(runbook=full).runbook_gaps == ()
    assert ruleset(runbook={**full, "restart": [], "boundaries": ""}).runbook_gaps \
        == ("boundaries", "restart")


# --------------------------------------------------------------------------- the use cases


@pytest.mark.usefixtures("active")
def test_pause_and_resume_are_audited_and_told(uow: FakeUnitOfWork, clock: FakeClock) -> None:
    detail = gov.pause(uow, NAME, reason=" fraud wave ", actor="ops")
    assert detail.summary.paused == Pause("ops", clock(), "fraud wave")
    assert gov.get_ruleset(uow, NAME).summary.paused == detail.summary.paused
    resumed = gov.resume(uow, NAME, actor="biz-backup")
    assert resumed.summary.paused is None
    events = [(e.version, e.action, e.actor, e.comment)
              for e in gov.list_audit_events(uow, NAME)][-2:]
    assert events == [(1, "paused", "ops", "fraud wave"), (1, "resumed", "biz-backup", "")]
    assert [e[0] for e in uow.store.outbox][-2:] == ["ruleset.paused", "ruleset.resumed"]


@pytest.mark.usefixtures("active")
def test_refusals_change_and_tell_nothing(uow: FakeUnitOfWork) -> None:
    told = len(uow.store.outbox)
    with pytest.raises(Forbidden):
        gov.pause(uow, NAME, reason="x", actor="appr")
    with pytest.raises(Conflict):
        gov.resume(uow, NAME, actor="ops")
    gov.pause(uow, NAME, reason="x", actor="ops")
    with pytest.raises(Conflict):
        gov.pause(uow, NAME, reason="y", actor="root")
    assert gov.get_ruleset(uow, NAME).summary.paused.reason == "x"  # type: ignore[union-attr]
    assert len(uow.store.outbox) == told + 1


@pytest.mark.usefixtures("active")
def test_a_pause_outlives_a_new_version(uow: FakeUnitOfWork) -> None:
    gov.pause(uow, NAME, reason="x", actor="ops")
    evaluator = FakeEvaluator()
    propose(uow, evaluator, "dev", limit=50)
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")
    summary = gov.get_ruleset(uow, NAME).summary
    assert summary.active_version == 2 and summary.paused is not None


def test_the_review_is_due_from_the_active_versions_activation(
        uow: FakeUnitOfWork, clock: FakeClock) -> None:
    evaluator = FakeEvaluator()
    gov.propose_version(uow, evaluator, NAME, definition=definition(review_every="30d"),
                        actor="root")
    sign(uow, 1, "biz")
    activated = clock()
    sign(uow, 1, "appr")
    summary = gov.get_ruleset(uow, NAME).summary
    assert summary.review_due_at == activated + timedelta(days=30)
    assert not summary.review_due(activated)
    assert summary.review_due(activated + timedelta(days=30))


def test_paused_periods_pair_each_pause_with_the_resume_after_it() -> None:
    from rules_service.domain.lifecycle import AuditAction
    from rules_service.domain.versions import AuditEvent
    from rules_service.services.pause_periods import PausedPeriod, periods_of

    def at(minutes: int) -> datetime:
        return NOW + timedelta(minutes=minutes)

    events = [AuditEvent(1, AuditAction.PAUSED, "ops", at(0), "one"),
              AuditEvent(1, AuditAction.RESUMED, "biz", at(10)),
              AuditEvent(1, AuditAction.PAUSED, "biz", at(20), "two")]
    periods = periods_of(NAME, events)
    assert periods == [PausedPeriod(NAME, at(0), at(10), "ops", "one", "biz"),
                       PausedPeriod(NAME, at(20), None, "biz", "two")]
    assert periods[0].overlaps(at(5), at(6)) and not periods[0].overlaps(at(11), at(19))
    assert periods[1].overlaps(at(1000), at(2000))
