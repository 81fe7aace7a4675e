"""People signing in to the pages: passwords (argon2) and the slow-down after failures.

A sign-in method's only job is to establish *which principal* is at the browser; the pages
then keep that name in a session. Passwords are the first method. A company's single
sign-on (OIDC) is a second one: it would verify the identity provider's ID token and call
``principal_for_sign_in`` with the name the token's claim maps to, so both methods share
the same rule about who may sign in at all (a known, unrevoked, human principal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rules_service.adapters.orm import PrincipalRow
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import DomainError, NotFound, RequestInvalid
from rules_service.domain.lifecycle import ensure_utc
from rules_service.domain.problems import Problem

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
FREE_FAILURES = 3
"""Failed sign-ins in a row allowed before each further attempt has to wait."""
FIRST_WAIT = timedelta(seconds=2)
LONGEST_WAIT = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class SignInRefused(DomainError):
    """Wrong name or password, or a principal that may not sign in (never says which)."""

    code = "sign_in_refused"


class SignInLocked(DomainError):
    """Too many failed sign-ins in a row: the next attempt must wait until ``until``."""

    code = "sign_in_locked"

    def __init__(self, until: datetime) -> None:
        super().__init__("too many failed sign-ins; try again after "
                         f"{until.strftime('%H:%M:%S')} UTC")
        self.until = until


@dataclass(frozen=True)
class SignedIn:
    """Who signed in: what the pages keep in the session."""

    name: str
    is_admin: bool


def _wait_after(failures: int) -> timedelta | None:
    """How long the next attempt waits after ``failures`` failures in a row (doubling)."""
    if failures < FREE_FAILURES:
        return None
    return min(FIRST_WAIT * 2 ** (failures - FREE_FAILURES), LONGEST_WAIT)


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
        row = uow.principals.get(name)
        if row is None:
            raise NotFound(f"no principal named {name}")
        if row.is_automation:
            problems.insert(0, Problem("name", f"{name} is an automation principal; "
                                               f"automations cannot sign in"))
        if problems:
            raise RequestInvalid(problems)
        row.password_hash = _hasher.hash(password)
        row.failed_sign_ins = 0
        row.sign_in_locked_until = None
        uow.commit()


def _may_sign_in(row: PrincipalRow | None) -> bool:
    return row is not None and row.revoked_at is None and not row.is_automation


def principal_for_sign_in(uow: UnitOfWork, name: str) -> SignedIn | None:
    """The principal a session may act as: known, unrevoked and a person; else None.

    Every sign-in method ends here, and every page request checks it again, so revoking a
    principal also ends its sessions.
    """
    with uow.readonly():
        row = uow.principals.get(name)
        return SignedIn(row.name, row.is_admin) if row is not None and _may_sign_in(row) \
            else None


def sign_in_with_password(uow: UnitOfWork, name: str, password: str) -> SignedIn:
    """Checks a name and password; 401 ``sign_in_refused`` or 429 ``sign_in_locked``.

    Failures in a row are counted on the principal (so every server process sees them);
    from the fourth on, each attempt must wait twice as long as the last, up to 15 minutes.
    """
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        raise SignInRefused("wrong name or password")
    with uow:
        now = ensure_utc(uow.now())
        row = uow.principals.get(name) if isinstance(name, str) and name else None
        if row is None or row.password_hash is None:
            _verify(_DUMMY_HASH, password)
            raise SignInRefused("wrong name or password")
        locked = row.sign_in_locked_until
        if locked is not None and ensure_utc(locked) > now:
            raise SignInLocked(ensure_utc(locked))
        if not _verify(row.password_hash, password) or not _may_sign_in(row):
            row.failed_sign_ins += 1
            wait = _wait_after(row.failed_sign_ins)
            row.sign_in_locked_until = now + wait if wait is not None else None
            uow.commit()
            raise SignInRefused("wrong name or password")
        row.failed_sign_ins = 0
        row.sign_in_locked_until = None
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        signed_in = SignedIn(row.name, row.is_admin)
        uow.commit()
    return signed_in


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
