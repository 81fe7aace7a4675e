"""Principals and bearer tokens: tokens are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from rules_service.adapters.orm import ApiTokenRow, PrincipalRow
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import Conflict, NotFound, RequestInvalid
from rules_service.domain.problems import Problem
from rules_service.services.views import IssuedToken, PrincipalView

MAX_TOKEN_LENGTH = 512
"""Longer bearer tokens are refused without a look-up."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


def hash_token(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _view(row: PrincipalRow) -> PrincipalView:
    live = sum(1 for t in row.tokens if t.revoked_at is None)
    return PrincipalView(row.name, row.is_admin, row.is_automation, row.created_at,
                         row.revoked_at, live)


def _issue(uow: UnitOfWork, row: PrincipalRow) -> str:
    token = secrets.token_urlsafe(32)
    uow.principals.add_token(ApiTokenRow(principal_id=row.id, token_hash=hash_token(token),
                                         created_at=uow.now()))
    uow.session.refresh(row)
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
        if uow.principals.get(name) is not None:
            raise Conflict("principal_exists", f"a principal named {name} exists already; "
                           f"use 'principals token {name}' to issue it a new token")
        row = uow.principals.add(PrincipalRow(name=name, is_admin=is_admin,
                                              is_automation=is_automation,
                                              created_at=uow.now()))
        token = _issue(uow, row)
        view = _view(row)
        uow.live_changed()
        uow.commit()
    return IssuedToken(view, token)


def issue_token(uow: UnitOfWork, name: str) -> IssuedToken:
    """A new token for an existing principal (re-enabling one whose tokens were revoked)."""
    with uow:
        row = uow.principals.get(name)
        if row is None:
            raise NotFound(f"no principal named {name}")
        row.revoked_at = None
        token = _issue(uow, row)
        view = _view(row)
        uow.live_changed()
        uow.commit()
    return IssuedToken(view, token)


def revoke_principal(uow: UnitOfWork, name: str) -> PrincipalView:
    """Revokes every token of the principal; it can do nothing until issued a new one."""
    with uow:
        row = uow.principals.get(name)
        if row is None:
            raise NotFound(f"no principal named {name}")
        now = uow.now()
        row.revoked_at = now
        for token in row.tokens:
            if token.revoked_at is None:
                token.revoked_at = now
        uow.session.flush()
        view = _view(row)
        uow.live_changed()
        uow.commit()
    return view


def list_principals(uow: UnitOfWork) -> list[PrincipalView]:
    """Every principal (never a token)."""
    with uow.readonly():
        return [_view(row) for row in uow.principals.all()]


def get_principal(uow: UnitOfWork, name: str) -> PrincipalView:
    """One principal by name; 404 when unknown."""
    with uow.readonly():
        row = uow.principals.get(name)
        if row is None:
            raise NotFound(f"no principal named {name}")
        return _view(row)


def authenticate(uow: UnitOfWork, token: str | None) -> PrincipalView | None:
    """The principal a bearer token belongs to, or None (unknown, revoked, or no token)."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = hash_token(token)
    with uow.readonly():
        row = uow.principals.token_by_hash(digest)
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        if row.revoked_at is not None or row.principal.revoked_at is not None:
            return None
        return _view(row.principal)
