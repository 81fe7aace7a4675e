"""Principals and bearer tokens: tokens are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.accounts import Account
from rules_service.domain.errors import Conflict, NotFound, RequestInvalid
from rules_service.domain.problems import Problem
from rules_service.services.views import IssuedToken, PrincipalView

MAX_TOKEN_LENGTH = 512
"""Longer bearer tokens are refused without a look-up."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}\Z")


def hash_token(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _view(account: Account) -> PrincipalView:
    return PrincipalView(account.name, account.is_admin, account.is_automation,
                         account.created_at, account.revoked_at, account.live_tokens)


def _new_token(account: Account, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    account.issue(hash_token(token), now)
    return token


def add_principal(uow: UnitOfWork, name: str, *, is_admin: bool = False,
                  is_automation: bool = False) -> IssuedToken:
    """Creates a principal and its first token; 409 ``principal_exists`` for a taken name."""
    problems = []
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(Problem("name", "a principal name is 1-200 letters, digits, '.', "
                                        "'_', '@' or '-', starting with a letter or digit"))
    if is_admin and is_automation:
        problems.append(Problem("automation", "an automation principal evaluates and reads "
                                              "only; it cannot also be an admin"))
    if problems:
        raise RequestInvalid(problems)
    with uow:
        if uow.people.get(name) is not None:
            raise Conflict("principal_exists", f"a principal named {name} exists already; "
                           f"use 'principals token {name}' to issue it a new token")
        account = Account(name, uow.now(), is_admin=is_admin, is_automation=is_automation)
        token = _new_token(account, uow.now())
        view = _view(uow.people.add(account))
        uow.live_changed()
        uow.commit()
    return IssuedToken(view, token)


def issue_token(uow: UnitOfWork, name: str) -> IssuedToken:
    """A new token for an existing principal (re-enabling one whose tokens were revoked)."""
    with uow:
        account = uow.people.get(name)
        if account is None:
            raise NotFound(f"no principal named {name}")
        token = _new_token(account, uow.now())
        view = _view(uow.people.save(account))
        uow.live_changed()
        uow.commit()
    return IssuedToken(view, token)


def revoke_principal(uow: UnitOfWork, name: str) -> PrincipalView:
    """Revokes every token of the principal; it can do nothing until issued a new one."""
    with uow:
        account = uow.people.get(name)
        if account is None:
            raise NotFound(f"no principal named {name}")
        account.revoke(uow.now())
        view = _view(uow.people.save(account))
        uow.live_changed()
        uow.commit()
    return view


def list_principals(uow: UnitOfWork) -> list[PrincipalView]:
    """Every principal (never a token)."""
    with uow.readonly():
        return [_view(account) for account in uow.people.all()]


def get_principal(uow: UnitOfWork, name: str) -> PrincipalView:
    """One principal by name; 404 when unknown."""
    with uow.readonly():
        account = uow.people.get(name)
        if account is None:
            raise NotFound(f"no principal named {name}")
        return _view(account)


def authenticate(uow: UnitOfWork, token: str | None) -> PrincipalView | None:
    """The principal a bearer token belongs to, or None (unknown, revoked, or no token)."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    with uow.readonly():
        found = uow.people.by_token_hash(digest)
        if found is None:
            return None
        stored, account = found
        if not hmac.compare_digest(stored.token_hash, digest):
            return None
        if stored.revoked_at is not None or account.revoked_at is not None:
            return None
        return _view(account)
