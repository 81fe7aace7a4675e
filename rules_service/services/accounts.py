"""People signing in to the pages: passwords (argon2) and the slow-down after failures.

A sign-in method's only job is to establish *which principal* is at the browser; the pages
then keep that name in a session. Passwords are the first method. A company's single
sign-on (OIDC) is a second one: it would verify the identity provider's ID token and call
``principal_for_sign_in`` with the name the token's claim maps to, so both methods share
the same rule about who may sign in at all (a known, unrevoked, human principal).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.accounts import FIRST_WAIT, FREE_FAILURES, LONGEST_WAIT
from rules_service.domain.errors import DomainError, NotFound, RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem

__all__ = ["FIRST_WAIT", "FREE_FAILURES", "LONGEST_WAIT", "MAX_PASSWORD_LENGTH",
           "MIN_PASSWORD_LENGTH", "SignInLocked", "SignInRefused", "SignedIn",
           "password_problems", "principal_for_sign_in", "set_password",
           "sign_in_with_password"]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

# Anything a principal name could be (see ``services.principals``); other names are unknown.
_PLAUSIBLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")

_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class SignInRefused(DomainError):
    """Wrong name or password, or a principal that may not sign in (never says which)."""

    code = "sign_in_refused"


class SignInLocked(DomainError):
    """Too many failed sign-ins in a row: the next attempt must wait until ``until``."""

    code = "sign_in_locked"

    def __init__(self, until: datetime, now: datetime) -> None:
        super().__init__(f"too many failed sign-ins; try again in {wait_words(until - now)}")
        self.until = until


def wait_words(wait: timedelta) -> str:
    """A wait as people say it, rounded up: "3 seconds", "2 minutes", "1 hour"."""
    seconds = max(1, math.ceil(wait.total_seconds()))
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = math.ceil(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


@dataclass(frozen=True)
class SignedIn:
    """Who signed in: what the pages keep in the session."""

    name: str
    is_admin: bool


def password_problems(password: str) -> list[Problem]:
    """Why a password cannot be used (empty when it can)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return [Problem("password", f"a password has at least {MIN_PASSWORD_LENGTH} "
                                    f"characters")]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [Problem("password", f"a password has at most {MAX_PASSWORD_LENGTH} "
                                    f"characters")]
    return []


def set_password(uow: UnitOfWork, name: str, password: str) -> None:
    """Sets a person's password; 404 unknown, 422 an automation or an unusable password."""
    problems = password_problems(password)
    with uow:
        account = uow.people.get(name)
        if account is None:
            raise NotFound(f"no principal named {name}")
        if account.is_automation:
            problems.insert(0, Problem("name", f"{name} is an automation principal; "
                                               f"automations cannot sign in"))
        if problems:
            raise RequestInvalid(problems)
        account.set_password_hash(_hasher.hash(password))
        uow.people.save(account)
        uow.throttles.forget(name)
        uow.commit()


def principal_for_sign_in(uow: UnitOfWork, name: str) -> SignedIn | None:
    """The principal a session may act as: known, unrevoked and a person; else None.

    Every sign-in method ends here, and every page request checks it again, so revoking a
    principal also ends its sessions.
    """
    with uow.readonly():
        account = uow.people.get(name)
        return SignedIn(account.name, account.is_admin) \
            if account is not None and account.may_sign_in else None


def sign_in_with_password(uow: UnitOfWork, name: str, password: str,
                          address: str = "") -> SignedIn:
    """Checks a name and password from a client ``address``; 401 ``sign_in_refused`` or 429
    ``sign_in_locked``.

    Attempts in a row that did not succeed are counted per name and address, for any name
    (known or not), in the database (so every server process sees them); from the fourth
    on, each attempt must wait twice as long as the last, up to 15 minutes. The attempt is
    counted before the password is checked, under a row lock, so parallel guesses each
    count; the check itself (about 200 ms of argon2) runs outside any transaction.
    """
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH \
            or not isinstance(name, str) or not _PLAUSIBLE_NAME.fullmatch(name):
        # No principal has such a name: refused like any wrong name, nothing stored.
        _verify(_DUMMY_HASH, password if isinstance(password, str) else "")
        raise SignInRefused("wrong name or password")
    address = address[:64]
    with uow:
        now = ensure_utc(uow.now())
        throttle = uow.throttles.locked(name, address, now)
        locked = throttle.refused_until(now)
        if locked is not None:
            raise SignInLocked(locked, now)
        throttle.attempt(now)
        uow.throttles.save(throttle, now)
        account = uow.people.get(name)
        uow.commit()
    password_hash = account.password_hash if account is not None else None
    if not _verify(password_hash or _DUMMY_HASH, password) or account is None \
            or password_hash is None or not account.may_sign_in:
        raise SignInRefused("wrong name or password")
    return _signed_in(uow, name, address, password)


def _signed_in(uow: UnitOfWork, name: str, address: str, password: str) -> SignedIn:
    """After a right password: forgets the throttle, rehashes if the defaults changed."""
    with uow:
        uow.throttles.forget(name, address)
        account = uow.people.get(name)
        if account is None or not account.may_sign_in:  # revoked meanwhile
            uow.commit()
            raise SignInRefused("wrong name or password")
        account.signed_in()
        if account.password_hash and _hasher.check_needs_rehash(account.password_hash):
            account.password_hash = _hasher.hash(password)
        uow.people.save(account)
        uow.commit()
        return SignedIn(account.name, account.is_admin)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
