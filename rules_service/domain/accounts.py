"""A principal's account: who it is, its bearer tokens (as hashes), and its sign-in state.

The rules that belong to the account live here: who may sign in to the pages (a known,
unrevoked person, never an automation), the slow-down after failed sign-ins (a
``SignInThrottle`` per name and client address: after ``FREE_FAILURES`` attempts in a row
that did not succeed each further attempt waits, from ``FIRST_WAIT`` doubling up to
``LONGEST_WAIT``), and revoking or re-enabling it with its tokens.
Hashing passwords and tokens is the services' job; the account only holds the hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rules_service.domain.lifecycle import ensure_utc

FREE_FAILURES = 3
"""Failed sign-ins in a row allowed before each further attempt has to wait."""
FIRST_WAIT = timedelta(seconds=2)
LONGEST_WAIT = timedelta(minutes=15)


def wait_after(failures: int) -> timedelta | None:
    """How long the next attempt waits after ``failures`` failures in a row (doubling)."""
    if failures < FREE_FAILURES:
        return None
    # The doubling is capped well past LONGEST_WAIT, so a long run of failures can never
    # overflow timedelta (49 in a row did).
    doublings = min(failures - FREE_FAILURES, 20)
    wait: timedelta = FIRST_WAIT * (2 ** doublings)
    return min(wait, LONGEST_WAIT)


@dataclass
class SignInThrottle:
    """Sign-in attempts in a row that did not succeed, for one name from one address.

    Kept for any name, known or not, so the slow-down says nothing about which names
    exist; kept per client address, so guesses from one address never delay a person
    signing in from another. An attempt counts as failed from the moment it starts (so
    parallel guesses each count and each wait) until it succeeds.
    """

    name: str
    address: str
    failures: int = 0
    locked_until: datetime | None = None

    def refused_until(self, now: datetime) -> datetime | None:
        """Until when an attempt at ``now`` is refused (None: it may try)."""
        locked = self.locked_until
        if locked is not None and ensure_utc(locked) > now:
            return ensure_utc(locked)
        return None

    def attempt(self, now: datetime) -> None:
        """Counts an attempt as failed; after ``FREE_FAILURES`` the next one has to wait."""
        self.failures += 1
        wait = wait_after(self.failures)
        self.locked_until = now + wait if wait is not None else None


@dataclass
class Token:
    """A bearer token, known only by its hex SHA-256; ``id`` is None until stored."""

    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    id: int | None = None

    @property
    def live(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


@dataclass
class Account:
    """A person or automation; ``id`` is None until stored."""

    name: str
    created_at: datetime
    is_admin: bool = False
    is_automation: bool = False
    revoked_at: datetime | None = None
    email: str | None = None
    password_hash: str | None = None
    failed_sign_ins: int = 0
    sign_in_locked_until: datetime | None = None
    tokens: list[Token] = field(default_factory=list)
    id: int | None = None

    @property
    def live_tokens(self) -> int:
        """How many of its tokens are not revoked."""
        return sum(1 for t in self.tokens if t.live)

    @property
    def may_sign_in(self) -> bool:
        """A session may act as it: unrevoked and a person."""
        return self.revoked_at is None and not self.is_automation

    def issue(self, token_hash: str, now: datetime) -> Token:
        """A new token; re-enables an account whose tokens were revoked."""
        self.revoked_at = None
        token = Token(token_hash, now)
        self.tokens.append(token)
        return token

    def revoke(self, now: datetime) -> None:
        """Revokes the account and every live token: it can do nothing until issued one."""
        self.revoked_at = now
        for token in self.tokens:
            if token.revoked_at is None:
                token.revoked_at = now

    def set_password_hash(self, password_hash: str) -> None:
        """A new password (its hash); forgets earlier failed sign-ins."""
        self.password_hash = password_hash
        self.failed_sign_ins = 0
        self.sign_in_locked_until = None

    def signed_in(self) -> None:
        """A successful sign-in: the count of failures starts again."""
        self.failed_sign_ins = 0
        self.sign_in_locked_until = None
