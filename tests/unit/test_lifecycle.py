"""The pure lifecycle and authority rules, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules_service.domain.errors import Conflict, Forbidden
from rules_service.domain.lifecycle import (
    Actor,
    AuditAction,
    SignoffDecision,
    VersionStatus,
    check_can_propose,
    check_can_resolve_escalation,
    check_can_rollback,
    check_can_withdraw,
    check_signable,
    choose_signoff_role,
    ensure_utc,
    format_duration,
    is_due,
    is_stale,
    owner_problems,
    parse_duration,
    status_after_signoffs,
)
from rules_service.domain.ruleset import Outcome, RoleHolders, Ruleset
from rules_service.domain.versions import RulesetRecord, Version


def _ruleset(signoff: tuple[str, ...] = ("business_owner", "approver"),
             **owners: tuple[str, str | None]) -> Ruleset:
    holders = {
        "business_owner": ("biz", "biz-backup"),
        "operations_owner": ("ops", "ops-backup"),
        "approver": ("appr", "appr-backup"),
        "maintainer": ("dev", None),
    }
    holders.update(owners)
    return Ruleset(name="demo", title="Demo", description="", signoff=signoff,
                   owners={r: RoleHolders(p, b) for r, (p, b) in holders.items()},
                   thresholds={}, inputs=(), rules=(), default=Outcome.ESCALATE,
                   fallback=Outcome.ESCALATE)


ADMIN = Actor("root", is_admin=True)


@pytest.mark.parametrize("name", ["dev", "biz", "biz-backup"])
def test_maintainer_and_business_owner_may_propose(name: str) -> None:
    check_can_propose(Actor(name), _ruleset())


@pytest.mark.parametrize("name", ["appr", "ops", "ops-backup", "stranger"])
def test_other_roles_may_not_propose(name: str) -> None:
    with pytest.raises(Forbidden, match="neither maintainer nor business_owner"):
        check_can_propose(Actor(name), _ruleset())


def test_only_an_admin_may_propose_a_first_version() -> None:
    check_can_propose(ADMIN, None)
    with pytest.raises(Forbidden, match="only an admin"):
        check_can_propose(Actor("dev"), None)


def test_automation_may_not_propose_even_when_named_as_maintainer() -> None:
    with pytest.raises(Forbidden, match="automation"):
        check_can_propose(Actor("dev", is_automation=True), _ruleset())


@pytest.mark.parametrize("name", ["ops", "ops-backup", "biz", "biz-backup"])
def test_operations_and_business_owners_may_roll_back(name: str) -> None:
    check_can_rollback(Actor(name), _ruleset())


@pytest.mark.parametrize("name", ["dev", "appr", "stranger"])
def test_others_may_not_roll_back(name: str) -> None:
    with pytest.raises(Forbidden):
        check_can_rollback(Actor(name), _ruleset())


def test_admin_may_roll_back() -> None:
    check_can_rollback(ADMIN, _ruleset())


def test_approver_or_admin_resolves_escalations() -> None:
    check_can_resolve_escalation(Actor("appr-backup"), _ruleset())
    check_can_resolve_escalation(ADMIN, _ruleset())
    with pytest.raises(Forbidden, match="holds neither approver"):
        check_can_resolve_escalation(Actor("biz"), _ruleset())


def test_the_role_an_escalation_is_addressed_to_resolves_it() -> None:
    for holder in ("ops", "ops-backup", "appr", "appr-backup"):
        check_can_resolve_escalation(Actor(holder), _ruleset(), "operations_owner")
    with pytest.raises(Forbidden, match="addressed to operations_owner"):
        check_can_resolve_escalation(Actor("biz"), _ruleset(), "operations_owner")
    with pytest.raises(Forbidden, match="automation"):
        check_can_resolve_escalation(Actor("ops", is_automation=True), _ruleset(),
                                     "operations_owner")


def test_author_cannot_sign_off_own_version() -> None:
    with pytest.raises(Forbidden, match="author"):
        choose_signoff_role(Actor("biz"), "biz", _ruleset(), {})


def test_non_holder_cannot_sign_off() -> None:
    with pytest.raises(Forbidden, match="holds none of the sign-off roles"):
        choose_signoff_role(Actor("dev"), "someone", _ruleset(), {})


def test_backup_holder_fills_the_role() -> None:
    assert choose_signoff_role(Actor("appr-backup"), "dev", _ruleset(), {}) == "approver"


def test_person_holding_two_roles_fills_the_first_unfilled_one() -> None:
    rs = _ruleset(approver=("biz", "appr-backup"))
    assert choose_signoff_role(Actor("biz"), "dev", rs, {}) == "business_owner"
    assert choose_signoff_role(Actor("biz"), "dev", rs, {"business_owner": "biz-backup"}) \
        == "approver"


def test_person_may_choose_which_held_role_to_fill() -> None:
    rs = _ruleset(approver=("biz", "appr-backup"))
    assert choose_signoff_role(Actor("biz"), "dev", rs, {}, role="approver") == "approver"


def test_one_person_fills_only_one_role() -> None:
    rs = _ruleset(approver=("biz", "appr-backup"))
    with pytest.raises(Conflict) as info:
        choose_signoff_role(Actor("biz"), "dev", rs, {"business_owner": "biz"})
    assert info.value.code == "already_signed_off"


def test_a_filled_role_cannot_be_signed_again() -> None:
    with pytest.raises(Conflict) as info:
        choose_signoff_role(Actor("biz-backup"), "dev", _ruleset(), {"business_owner": "biz"})
    assert info.value.code == "role_already_signed_off"


def test_requested_role_must_be_a_held_signoff_role() -> None:
    with pytest.raises(Forbidden, match="not a sign-off role"):
        choose_signoff_role(Actor("biz"), "dev", _ruleset(), {}, role="operations_owner")
    with pytest.raises(Forbidden, match="does not hold the approver role"):
        choose_signoff_role(Actor("biz"), "dev", _ruleset(), {}, role="approver")


def test_every_required_role_approving_approves() -> None:
    required = ("business_owner", "approver")
    a = SignoffDecision.APPROVE
    assert status_after_signoffs(required, {"business_owner": a}) is VersionStatus.PENDING
    assert status_after_signoffs(required, {"business_owner": a, "approver": a}) \
        is VersionStatus.APPROVED


def test_any_required_role_rejecting_rejects() -> None:
    decisions = {"business_owner": SignoffDecision.APPROVE,
                 "approver": SignoffDecision.REJECT}
    assert status_after_signoffs(("business_owner", "approver"), decisions) \
        is VersionStatus.REJECTED


@pytest.mark.parametrize("status", [s for s in VersionStatus if s is not VersionStatus.PENDING])
def test_only_pending_versions_take_signoffs(status: VersionStatus) -> None:
    with pytest.raises(Conflict) as info:
        check_signable(status)
    assert info.value.code == ("stale" if status is VersionStatus.STALE else "not_pending")


def test_only_the_author_withdraws_an_open_version() -> None:
    check_can_withdraw(Actor("dev"), "dev", VersionStatus.PENDING)
    check_can_withdraw(Actor("dev"), "dev", VersionStatus.APPROVED)
    with pytest.raises(Forbidden):
        check_can_withdraw(Actor("biz"), "dev", VersionStatus.PENDING)
    with pytest.raises(Conflict):
        check_can_withdraw(Actor("dev"), "dev", VersionStatus.ACTIVE)


def test_version_is_stale_when_the_active_version_moved() -> None:
    assert not is_stale(None, None)
    assert not is_stale(3, 3)
    assert is_stale(3, 4)
    assert is_stale(None, 1)
    assert is_stale(2, None)


def test_due_compares_effective_time_in_utc() -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert is_due(None, now)
    assert is_due(now - timedelta(seconds=1), now)
    assert not is_due(now + timedelta(seconds=1), now)
    # 13:00 at UTC+2 is 11:00 UTC: due at 12:00 UTC.
    assert is_due(datetime(2030, 1, 1, 13, tzinfo=timezone(timedelta(hours=2))), now)


def test_naive_times_are_taken_as_utc() -> None:
    assert ensure_utc(datetime(2030, 1, 1, 12)) == datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("4h", timedelta(hours=4)), ("30m", timedelta(minutes=30)), ("1d", timedelta(days=1)),
    ("1h30m", timedelta(hours=1, minutes=30)), ("90s", timedelta(seconds=90)),
    ("2d4h", timedelta(days=2, hours=4)),
])
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


# One form everywhere: what a runbook may not say, a dashboard query may not either.
@pytest.mark.parametrize("text", ["", "4", "h", "4 hours", "-1h", "4h x", "1.5h", "2H",
                                  "30m1h", "4h 30m", " 4h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_owners_who_are_not_principals_are_each_named_at_their_place() -> None:
    ruleset = _ruleset(approver=("cs-lead", "appr-backup"), maintainer=("dev", "typo"))
    known = {"biz", "biz-backup", "ops", "ops-backup", "appr-backup", "dev"}
    problems = owner_problems(ruleset, known)
    assert [(p.place, p.message.split()[0]) for p in problems] == [
        ("owners.approver.primary", "cs-lead"), ("owners.maintainer.backup", "typo")]


def test_a_ruleset_whose_owners_all_exist_has_no_owner_problems() -> None:
    known = {"biz", "biz-backup", "ops", "ops-backup", "appr", "appr-backup", "dev"}
    assert owner_problems(_ruleset(), known) == []


@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650))
       .map(lambda d: timedelta(seconds=int(d.total_seconds())) or timedelta(seconds=1)))
def test_every_duration_written_in_the_one_form_reads_back(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta


# --------------------------------------------------------------------------- aggregates

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _changed(limit: int, **changes: object) -> Ruleset:
    """Another version's ruleset: its definition (and so its content hash) differs."""
    return replace(_ruleset(), definition={"limit": limit}, **changes)  # type: ignore[arg-type]


def _record_with_active_v1() -> tuple[RulesetRecord, Version]:
    record = RulesetRecord(1, "demo", "Demo", NOW)
    v1 = record.propose(ADMIN, _ruleset(), "v1", NOW)
    record.sign_off(v1, Actor("biz"), SignoffDecision.APPROVE, NOW)
    record.sign_off(v1, Actor("appr"), SignoffDecision.APPROVE, NOW)
    return record, v1


def test_a_version_records_the_events_its_sign_offs_cause_in_order() -> None:
    record, v1 = _record_with_active_v1()
    assert v1.status is VersionStatus.ACTIVE and record.active is v1
    assert [(e.version, e.action.value) for e in record.events] == [
        (1, "proposed"), (1, "signed_off"), (1, "signed_off"), (1, "approved"),
        (1, "activated")]
    assert record.events[-1].details == {"previous_version": None}


def test_activating_supersedes_the_active_version_and_stales_versions_based_on_it() -> None:
    record, v1 = _record_with_active_v1()
    v2 = record.propose(Actor("dev"), _changed(2, title="Demo 2"), "v2", NOW)
    v3 = record.propose(Actor("dev"), _changed(3), "v3", NOW)
    record.events.clear()
    assert record.activate(v2, "system", NOW, action=AuditAction.ACTIVATED) == 1
    assert (v1.status, v2.status, v3.status) == (VersionStatus.SUPERSEDED,
                                                 VersionStatus.ACTIVE, VersionStatus.STALE)
    assert [(e.version, e.action.value) for e in record.events] == [
        (1, "superseded"), (2, "activated"), (3, "stale")]
    assert record.title == "Demo 2"


def test_rolling_back_needs_authority_and_a_superseded_target() -> None:
    record, v1 = _record_with_active_v1()
    v2 = record.propose(Actor("dev"), _changed(2), "v2", NOW)
    with pytest.raises(Conflict, match="never active"):
        record.roll_back_to(v2, Actor("ops"), "r", NOW)
    with pytest.raises(Forbidden):
        record.roll_back_to(v1, Actor("dev"), "r", NOW)
    with pytest.raises(Conflict, match="already active"):
        record.roll_back_to(v1, Actor("ops"), "r", NOW)


def test_only_the_author_withdraws_and_only_while_open() -> None:
    record, v1 = _record_with_active_v1()
    with pytest.raises(Conflict):
        record.withdraw(v1, ADMIN, NOW)
    v2 = record.propose(Actor("dev"), _changed(2), "v2", NOW)
    with pytest.raises(Forbidden):
        record.withdraw(v2, Actor("biz"), NOW)
    record.withdraw(v2, Actor("dev"), NOW, comment="oops")
    assert (v2.status, v2.events[-1].comment) == (VersionStatus.WITHDRAWN, "oops")
