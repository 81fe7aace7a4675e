"""Principals in the database as ``domain.accounts.Account``: loaded with their tokens,
saved back with what changed (new tokens inserted, revocations, sign-in state, contact)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules_service.adapters.orm import ApiTokenRow, PrincipalRow
from rules_service.domain.accounts import Account, Token


def _token(row: ApiTokenRow) -> Token:
    return Token(row.token_hash, row.created_at, row.revoked_at, row.id)


def account_of(row: PrincipalRow) -> Account:
    """The domain account of a principal row, with its tokens."""
    return Account(row.name, row.created_at, row.is_admin, row.is_automation,
                   row.revoked_at, row.email, row.password_hash, row.failed_sign_ins,
                   row.sign_in_locked_until, [_token(t) for t in row.tokens], row.id)


class PrincipalStore:
    """Loads and saves accounts; remembers the rows of what it loaded in this transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[str, PrincipalRow] = {}

    def _track(self, row: PrincipalRow) -> Account:
        self._rows[row.name] = row
        return account_of(row)

    def get(self, name: str) -> Account | None:
        """The account by name, or None."""
        row = self.session.scalars(select(PrincipalRow).where(PrincipalRow.name == name)).first()
        return self._track(row) if row is not None else None

    def all(self) -> list[Account]:
        """Every account, by name."""
        rows = self.session.scalars(select(PrincipalRow).order_by(PrincipalRow.name)).all()
        return [self._track(row) for row in rows]

    def by_token_hash(self, token_hash: str) -> tuple[Token, Account] | None:
        """The token with that hash and the account it belongs to, or None."""
        row = self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)).first()
        if row is None:
            return None
        return _token(row), self._track(row.principal)

    def add(self, account: Account) -> Account:
        """Stores a new account and its tokens; returns it as stored."""
        row = PrincipalRow(name=account.name, is_admin=account.is_admin,
                           is_automation=account.is_automation,
                           created_at=account.created_at)
        self.session.add(row)
        self.session.flush()
        self._rows[row.name] = row
        return self.save(account)

    def save(self, account: Account) -> Account:
        """Writes the account's changes (and inserts its new tokens); returns it as stored."""
        row = self._rows[account.name]
        row.is_admin = account.is_admin
        row.is_automation = account.is_automation
        row.revoked_at = account.revoked_at
        row.email = account.email
        row.password_hash = account.password_hash
        row.failed_sign_ins = account.failed_sign_ins
        row.sign_in_locked_until = account.sign_in_locked_until
        stored = {t.id: t for t in row.tokens}
        inserted = False
        for token in account.tokens:
            if token.id is None:
                self.session.add(ApiTokenRow(principal_id=row.id, token_hash=token.token_hash,
                                             created_at=token.created_at,
                                             revoked_at=token.revoked_at))
                inserted = True
            elif token.id in stored:
                stored[token.id].revoked_at = token.revoked_at
        self.session.flush()
        if inserted:
            self.session.refresh(row)
        return account_of(row)
