"""The notification rules without I/O: default recipients, the escalation path walk, retry
backoff, and webhook signatures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.domain import notifications as rules
from rules_service.domain.lifecycle import AuditAction

EXPENSES = load_ruleset_file(Path(__file__).resolve().parents[2] / "rulesets"
                             / "expense-approval.yaml")
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FOUR_HOURS = timedelta(hours=4)


def test_a_proposal_goes_to_the_holders_and_backups_of_the_required_signoff_roles() -> None:
    assert EXPENSES.signoff == ("business_owner", "approver")
    assert rules.signoff_recipients(EXPENSES) == ["finance-lead", "finance-deputy",
                                                  "controller", "cfo"]


def test_an_activation_goes_to_the_four_owners() -> None:
    assert rules.owner_recipients(EXPENSES) == ["finance-lead", "ops-oncall", "controller",
                                                "rules-dev"]


def test_an_escalation_goes_to_the_holder_of_its_role() -> None:
    assert rules.escalation_recipient(EXPENSES, "approver") == "controller"
    assert rules.escalation_recipient(EXPENSES, "nobody") is None


def test_an_overdue_escalation_walks_the_path_after_the_holder_who_has_it() -> None:
    # expense-approval: path [controller, cfo, finance-lead]; the approver is controller.
    first = rules.escalation_step(EXPENSES, "approver", 0, NOON, FOUR_HOURS)
    second = rules.escalation_step(EXPENSES, "approver", 1, NOON + FOUR_HOURS, FOUR_HOURS)
    past_the_end = rules.escalation_step(EXPENSES, "approver", 2, NOON, FOUR_HOURS)
    assert (first.step, first.notify, first.next_step_at) == (1, "cfo", NOON + FOUR_HOURS)
    assert (second.step, second.notify, second.next_step_at) == (2, "finance-lead", None)
    assert (past_the_end.notify, past_the_end.next_step_at) == (None, None)


def test_a_holder_not_on_the_path_hands_over_to_the_whole_path() -> None:
    assert rules.next_on_path(EXPENSES, "maintainer") == ["controller", "cfo",
                                                          "finance-lead"]


def test_every_version_event_type_is_a_known_event_type_and_superseded_is_not_told() -> None:
    assert set(rules.VERSION_EVENTS.values()) <= set(rules.EVENT_TYPES)
    assert AuditAction.SUPERSEDED not in rules.VERSION_EVENTS


@given(attempts=st.integers(min_value=1, max_value=60), seed=st.integers())
def test_retry_delays_grow_exponentially_with_jitter_and_never_pass_the_cap(
        attempts: int, seed: int) -> None:
    base, cap = 10.0, 3600.0
    delay = rules.retry_delay(attempts, base_s=base, cap_s=cap,
                              rng=random.Random(seed)).total_seconds()
    bound = min(cap, base * 2 ** (attempts - 1))
    assert bound / 2 <= delay <= bound


@given(secret=st.text(min_size=16, max_size=64), body=st.binary(max_size=512),
       stamp=st.integers(min_value=0, max_value=2**33))
def test_a_signature_verifies_with_its_secret_and_nothing_else(
        secret: str, body: bytes, stamp: int) -> None:
    header = rules.signature(secret, stamp, body)
    assert header.startswith("sha256=")
    assert rules.verify_signature(secret, str(stamp), body, header, now=stamp)
    assert not rules.verify_signature(secret + "x", str(stamp), body, header, now=stamp)
    assert not rules.verify_signature(secret, str(stamp), body + b" ", header, now=stamp)
    assert not rules.verify_signature(secret, str(stamp + 1), body, header, now=stamp)


def test_an_old_timestamp_is_refused_as_a_replay() -> None:
    header = rules.signature("s" * 16, 1000, b"{}")
    assert rules.verify_signature("s" * 16, "1000", b"{}", header, now=1200)
    assert not rules.verify_signature("s" * 16, "1000", b"{}", header, now=1000 + 301)


def test_the_webhook_body_has_the_documented_shape_and_the_same_bytes_every_time() -> None:
    one = rules.webhook_body("e1", "version.proposed", NOON, "refunds", {"version": 2})
    assert one == rules.webhook_body("e1", "version.proposed", NOON, "refunds",
                                     {"version": 2})
    assert one == (b'{"id":"e1","type":"version.proposed","occurred_at":'
                   b'"2026-12-01T12:00:00Z","ruleset":"refunds","data":{"version":2}}')


def test_a_summary_reads_as_a_sentence_even_with_facts_missing() -> None:
    assert rules.summary("version.proposed", "refunds", {"version": 3, "actor": "dev"}) == \
        "refunds version 3 was proposed by dev and waits for sign-off"
    assert rules.summary("escalation.overdue", "refunds", {}) == \
        "a refunds escalation to the ? is overdue (step ?)"


# The path of the "maintainer" role's escalations: all three people, in order.
WHOLE_PATH = ["controller", "cfo", "finance-lead"]


@given(taken=st.integers(0, 3), late_s=st.integers(0, 30 * 24 * 3600))
def test_a_late_walk_pages_only_the_step_the_path_has_reached_and_skips_the_rest(
        taken: int, late_s: int) -> None:
    due = NOON + taken * FOUR_HOURS
    step = rules.escalation_step(EXPENSES, "maintainer", taken, due, FOUR_HOURS,
                                 due + timedelta(seconds=late_s))
    reached = min(taken + late_s // int(FOUR_HOURS.total_seconds()), 2)
    if taken >= len(WHOLE_PATH):  # the path is walked to its end: nobody left to page
        assert (step.notify, step.skipped, step.next_step_at) == (None, (), None)
        return
    assert step.step == reached + 1
    assert step.notify == WHOLE_PATH[reached]
    assert step.skipped == tuple((i + 1, WHOLE_PATH[i]) for i in range(taken, reached))
    if reached + 1 < len(WHOLE_PATH):  # the next step keeps the rhythm of the due time
        assert step.next_step_at == due + (reached - taken + 1) * FOUR_HOURS
        assert step.next_step_at > due + timedelta(seconds=late_s)
    else:
        assert step.next_step_at is None


def test_the_people_a_walk_reached_are_the_path_up_to_its_steps() -> None:
    assert rules.path_reached(EXPENSES, "approver", 0) == []
    assert rules.path_reached(EXPENSES, "approver", 1) == ["cfo"]
    assert rules.path_reached(EXPENSES, "approver", 5) == ["cfo", "finance-lead"]


@given(offset_s=st.integers(0, 10 ** 9))
def test_new_escalation_notices_wait_for_the_next_digest_and_the_rest_go_at_once(
        offset_s: int) -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=offset_s)
    digest = timedelta(minutes=5)
    due = rules.notice_due("escalation.opened", now, digest)
    assert now <= due < now + digest
    assert due.timestamp() % digest.total_seconds() == 0  # one boundary for everyone
    assert rules.notice_due("escalation.overdue", now, digest) == now
    assert rules.notice_due("version.proposed", now, digest) == now
    assert rules.notice_due("escalation.opened", now, timedelta(0)) == now


def test_subjects_take_an_before_a_vowel_sound() -> None:
    data = {"to_role": "approver", "due_at": "16:00", "step": 1}
    assert rules.summary("escalation.opened", "expense-approval", data) == \
        "an expense-approval decision needs the approver by 16:00"
    assert rules.summary("escalation.overdue", "discount-approval", data).startswith(
        "a discount-approval escalation")
    assert rules.summary("escalation.resolved", "onboarding", {}).startswith(
        "an onboarding escalation")


def test_each_notice_links_to_where_it_is_acted_on() -> None:
    assert rules.page_path("escalation.opened", "refunds", {"escalation_id": "e1"}) == \
        "/escalations#esc-e1"
    assert rules.page_path("version.proposed", "refunds", {"version": 2}) == \
        "/rulesets/refunds/versions/2"
    assert rules.page_path("version.rolled_back", "refunds", {}) == "/rulesets/refunds"
    assert rules.page_path("version.proposed", None, {"version": 2}) is None
