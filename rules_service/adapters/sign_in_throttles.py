"""Sign-in throttles (``domain.accounts.SignInThrottle``) in the database, one row per name
and client address, each read under a row lock so parallel attempts are counted one by one."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rules_service.adapters.orm import SignInThrottleRow
from rules_service.domain.accounts import SignInThrottle

FORGET_AFTER = timedelta(days=1)
"""A throttle with no attempt for this long is pruned (its count starts again)."""

PRUNE_BATCH = 100


class SignInThrottleStore:
    """Locks, reads and writes throttles within the unit of work's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def locked(self, name: str, address: str, now: datetime) -> SignInThrottle:
        """The throttle for ``name`` from ``address``, its row locked until the transaction
        ends (created first if missing; SQLite's write transaction already locks)."""
        self._prune(now)
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(insert(SignInThrottleRow).values(
            name=name, address=address, failures=0, last_attempt_at=now,
        ).on_conflict_do_nothing(index_elements=["name", "address"]))
        row = self.session.execute(
            select(SignInThrottleRow.failures, SignInThrottleRow.locked_until)
            .where(SignInThrottleRow.name == name, SignInThrottleRow.address == address)
            .with_for_update()).one()
        return SignInThrottle(name, address, row.failures, row.locked_until)

    def _prune(self, now: datetime) -> None:
        # A bounded batch, skipping rows other attempts hold, so pruning never waits.
        stale = (select(SignInThrottleRow.name, SignInThrottleRow.address)
                 .where(SignInThrottleRow.last_attempt_at < now - FORGET_AFTER)
                 .limit(PRUNE_BATCH).with_for_update(skip_locked=True))
        self.session.execute(delete(SignInThrottleRow).where(
            tuple_(SignInThrottleRow.name, SignInThrottleRow.address).in_(stale)))

    def save(self, throttle: SignInThrottle, now: datetime) -> None:
        """Writes the throttle's count and lock (an attempt was made at ``now``)."""
        row = self.session.get(SignInThrottleRow, (throttle.name, throttle.address))
        assert row is not None, "save() follows locked() in the same transaction"
        row.failures = throttle.failures
        row.locked_until = throttle.locked_until
        row.last_attempt_at = now
        self.session.flush()

    def forget(self, name: str, address: str | None = None) -> None:
        """Drops the throttle of ``name`` from ``address`` (from every address: None)."""
        condition = SignInThrottleRow.name == name
        if address is not None:
            condition = condition & (SignInThrottleRow.address == address)
        self.session.execute(delete(SignInThrottleRow).where(condition))
