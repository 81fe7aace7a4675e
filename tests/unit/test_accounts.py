"""The account's own rules: who may sign in, the slow-down after failures, revoking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules_service.domain.accounts import (
    FIRST_WAIT,
    FREE_FAILURES,
    LONGEST_WAIT,
    Account,
    SignInThrottle,
    wait_after,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_three_failures_in_a_row_are_free_then_the_wait_doubles_up_to_fifteen_minutes() -> None:
    assert [wait_after(n) for n in range(FREE_FAILURES)] == [None] * FREE_FAILURES
    assert wait_after(FREE_FAILURES) == FIRST_WAIT == timedelta(seconds=2)
    assert wait_after(FREE_FAILURES + 1) == timedelta(seconds=4)
    assert wait_after(FREE_FAILURES + 3) == timedelta(seconds=16)
    assert wait_after(FREE_FAILURES + 9) == LONGEST_WAIT == timedelta(minutes=15)


def test_attempts_lock_the_throttle_until_the_wait_is_over() -> None:
    throttle = SignInThrottle("biz", "192.0.2.1")
    for _ in range(FREE_FAILURES - 1):
        throttle.attempt(NOW)
        assert throttle.refused_until(NOW) is None
    throttle.attempt(NOW)
    assert throttle.failures == FREE_FAILURES
    assert throttle.refused_until(NOW) == NOW + FIRST_WAIT
    assert throttle.refused_until(NOW + FIRST_WAIT) is None
    throttle.attempt(NOW + FIRST_WAIT)
    assert throttle.refused_until(NOW + FIRST_WAIT) == NOW + 3 * FIRST_WAIT


def test_a_naive_lock_time_is_taken_as_utc() -> None:
    throttle = SignInThrottle("biz", "", locked_until=datetime(2024, 5, 1, 12, 0, 5))
    assert throttle.refused_until(NOW) == NOW + timedelta(seconds=5)


def test_a_success_or_a_new_password_forgets_the_old_columns() -> None:
    account = Account("biz", NOW, password_hash="h", failed_sign_ins=4,
                      sign_in_locked_until=NOW)
    account.signed_in()
    assert (account.failed_sign_ins, account.sign_in_locked_until) == (0, None)
    account = Account("biz", NOW, password_hash="h", failed_sign_ins=4)
    account.set_password_hash("new")
    assert (account.password_hash, account.failed_sign_ins,
            account.sign_in_locked_until) == ("new", 0, None)


def test_only_unrevoked_people_may_sign_in() -> None:
    assert Account("biz", NOW).may_sign_in
    assert not Account("bot", NOW, is_automation=True).may_sign_in
    assert not Account("gone", NOW, revoked_at=NOW).may_sign_in


def test_revoking_ends_every_live_token_and_a_new_token_re_enables() -> None:
    account = Account("biz", NOW)
    account.issue("a" * 64, NOW)
    account.issue("b" * 64, NOW)
    account.tokens[0].revoked_at = NOW - timedelta(days=1)
    assert account.live_tokens == 1
    account.revoke(NOW)
    assert account.revoked_at == NOW and account.live_tokens == 0
    assert account.tokens[0].revoked_at == NOW - timedelta(days=1)
    account.issue("c" * 64, NOW)
    assert account.revoked_at is None and account.live_tokens == 1


def test_the_wait_after_a_very_long_run_of_failures_is_the_longest_wait() -> None:
    from rules_service.domain.accounts import LONGEST_WAIT, wait_after
    assert wait_after(49) == LONGEST_WAIT
    assert wait_after(10_000) == LONGEST_WAIT


@pytest.mark.parametrize(("seconds", "words"), [
    (0.2, "1 second"), (2, "2 seconds"), (59.5, "1 minute"), (60, "1 minute"),
    (61, "2 minutes"), (120, "2 minutes"), (899, "15 minutes"), (3600, "1 hour"),
    (5400, "2 hours")])
def test_a_sign_in_wait_is_said_as_a_wait(seconds: float, words: str) -> None:
    from rules_service.services.accounts import wait_words

    assert wait_words(timedelta(seconds=seconds)) == words
