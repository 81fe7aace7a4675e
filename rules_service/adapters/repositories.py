"""Repositories: the queries the services need, over one SQLAlchemy session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from rules_service.adapters.orm import (
    ApiTokenRow,
    AuditEventRow,
    DecisionKeyRow,
    DecisionRow,
    EscalationRow,
    LiveGenerationRow,
    PrincipalRow,
    RulesetRow,
    SignoffRow,
    VersionRow,
)

ACTIVE = "active"
OPEN_STATUSES = ("pending", "approved")


class RulesetRepository:
    """Rulesets, and the row lock that serialises every transition of one ruleset."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str) -> RulesetRow | None:
        """The ruleset by name, or None."""
        return self.session.scalars(select(RulesetRow).where(RulesetRow.name == name)).first()

    def get_for_update(self, name: str) -> RulesetRow | None:
        """The ruleset by name, its row locked until the transaction ends (PostgreSQL)."""
        stmt = select(RulesetRow).where(RulesetRow.name == name).with_for_update()
        row = self.session.execute(stmt).scalars().first()
        if row is not None:
            # The lock may have waited for another transaction: forget anything read before
            # it so that every later query sees that transaction's results.
            self.session.expire_all()
        return row

    def get_or_create_for_update(self, name: str, title: str) -> RulesetRow:
        """The locked ruleset, created first when it does not exist (race-safe)."""
        row = self.get_for_update(name)
        if row is not None:
            return row
        try:
            with self.session.begin_nested():
                self.session.add(RulesetRow(name=name, title=title))
        except IntegrityError:
            pass  # another transaction created it first; lock theirs
        row = self.get_for_update(name)
        assert row is not None
        return row

    def list_all(self) -> Sequence[RulesetRow]:
        """Every ruleset, by name."""
        return self.session.scalars(select(RulesetRow).order_by(RulesetRow.name)).all()


class VersionRepository:
    """Versions of rulesets."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, ruleset_id: int, number: int) -> VersionRow | None:
        """One version by ruleset and number."""
        return self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id, VersionRow.number == number)).first()

    def for_ruleset(self, ruleset_id: int) -> Sequence[VersionRow]:
        """Every version of a ruleset, oldest first."""
        return self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id).order_by(VersionRow.number)).all()

    def active(self, ruleset_id: int) -> VersionRow | None:
        """The active version, if any."""
        return self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id, VersionRow.status == ACTIVE)).first()

    def newest(self, ruleset_id: int) -> VersionRow | None:
        """The highest-numbered version, if any."""
        return self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id).order_by(VersionRow.number.desc())).first()

    def next_number(self, ruleset_id: int) -> int:
        """The number the next version of the ruleset gets."""
        current = self.session.scalar(select(func.max(VersionRow.number)).where(
            VersionRow.ruleset_id == ruleset_id))
        return int(current or 0) + 1

    def open_versions(self, ruleset_id: int) -> Sequence[VersionRow]:
        """Pending and approved (scheduled) versions, oldest first."""
        return self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id,
            VersionRow.status.in_(OPEN_STATUSES)).order_by(VersionRow.number)).all()

    def open_by_ruleset(self) -> dict[int, list[VersionRow]]:
        """Open versions of every ruleset, for listings."""
        out: dict[int, list[VersionRow]] = {}
        rows = self.session.scalars(select(VersionRow).where(
            VersionRow.status.in_(OPEN_STATUSES)).order_by(VersionRow.number)).all()
        for row in rows:
            out.setdefault(row.ruleset_id, []).append(row)
        return out

    def active_by_ruleset(self) -> dict[int, VersionRow]:
        """The active version of every ruleset that has one."""
        rows = self.session.scalars(select(VersionRow).where(VersionRow.status == ACTIVE)).all()
        return {row.ruleset_id: row for row in rows}

    def due_ruleset_names(self, now: datetime) -> list[str]:
        """Names of rulesets with an approved version whose effective time has come."""
        stmt = (select(RulesetRow.name).join(VersionRow, VersionRow.ruleset_id == RulesetRow.id)
                .where(VersionRow.status == "approved",
                       or_(VersionRow.effective_at.is_(None), VersionRow.effective_at <= now))
                .distinct())
        return list(self.session.scalars(stmt).all())

    def add(self, row: VersionRow) -> VersionRow:
        """Stores a new version."""
        self.session.add(row)
        self.session.flush()
        return row

    def add_signoff(self, row: SignoffRow) -> SignoffRow:
        """Stores a sign-off."""
        self.session.add(row)
        self.session.flush()
        return row


class AuditRepository:
    """The audit trail: append-only."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, ruleset_id: int, version: int | None, action: str, actor: str, at: datetime,
            comment: str = "", details: dict[str, Any] | None = None) -> AuditEventRow:
        """Appends one event."""
        row = AuditEventRow(ruleset_id=ruleset_id, version=version, action=action, actor=actor,
                            comment=comment or "", details=details or {}, at=at)
        self.session.add(row)
        self.session.flush()
        return row

    def for_ruleset(self, ruleset_id: int, version: int | None = None,
             action: str | None = None) -> Sequence[AuditEventRow]:
        """A ruleset's events in the order they happened."""
        stmt = select(AuditEventRow).where(AuditEventRow.ruleset_id == ruleset_id)
        if version is not None:
            stmt = stmt.where(AuditEventRow.version == version)
        if action is not None:
            stmt = stmt.where(AuditEventRow.action == action)
        return self.session.scalars(stmt.order_by(AuditEventRow.id)).all()


class PrincipalRepository:
    """Principals and their token hashes."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str) -> PrincipalRow | None:
        """The principal by name, or None."""
        return self.session.scalars(select(PrincipalRow).where(PrincipalRow.name == name)).first()

    def all(self) -> Sequence[PrincipalRow]:
        """Every principal, by name."""
        return self.session.scalars(select(PrincipalRow).order_by(PrincipalRow.name)).all()

    def add(self, row: PrincipalRow) -> PrincipalRow:
        """Stores a new principal."""
        self.session.add(row)
        self.session.flush()
        return row

    def add_token(self, row: ApiTokenRow) -> ApiTokenRow:
        """Stores a token hash."""
        self.session.add(row)
        self.session.flush()
        return row

    def token_by_hash(self, token_hash: str) -> ApiTokenRow | None:
        """The token row with that hash, or None."""
        return self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)).first()


class DecisionRepository:
    """Recorded decisions and their escalations."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, decision_id: str) -> DecisionRow | None:
        """One decision by id (the primary key is (id, evaluated_at): one index probe per
        partition on PostgreSQL)."""
        return self.session.scalars(
            select(DecisionRow).where(DecisionRow.id == decision_id)).unique().first()

    def by_idempotency_key(self, caller: str, key: str) -> DecisionRow | None:
        """The decision a caller recorded under an idempotency key, or None: found through
        ``decision_keys``, whose (id, evaluated_at) reaches exactly one partition."""
        k = DecisionKeyRow
        stmt = (select(DecisionRow)
                .join(k, and_(k.decision_id == DecisionRow.id,
                              k.evaluated_at == DecisionRow.evaluated_at))
                .where(k.caller == caller, k.idempotency_key == key))
        return self.session.scalars(stmt).unique().first()

    def list(self, *, ruleset_id: int | None = None, outcome: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             before: tuple[datetime, str] | None = None,
             limit: int = 100, caller: str | None = None) -> Sequence[DecisionRow]:
        """Decisions newest first; ``before`` is the (evaluated_at, id) cursor."""
        stmt = select(DecisionRow)
        if caller is not None:
            stmt = stmt.where(DecisionRow.caller == caller)
        if ruleset_id is not None:
            stmt = stmt.where(DecisionRow.ruleset_id == ruleset_id)
        if outcome is not None:
            stmt = stmt.where(DecisionRow.outcome == outcome)
        if since is not None:
            stmt = stmt.where(DecisionRow.evaluated_at >= since)
        if until is not None:
            stmt = stmt.where(DecisionRow.evaluated_at < until)
        if before is not None:
            at, last_id = before
            # The first bound alone prunes partitions and bounds the index scan.
            stmt = stmt.where(DecisionRow.evaluated_at <= at,
                              or_(DecisionRow.evaluated_at < at,
                                  and_(DecisionRow.evaluated_at == at, DecisionRow.id < last_id)))
        stmt = stmt.order_by(DecisionRow.evaluated_at.desc(), DecisionRow.id.desc()).limit(limit)
        return self.session.scalars(stmt).unique().all()

    def recent_outcomes(self, ruleset_id: int, limit: int
                        ) -> Sequence[tuple[str, dict[str, Any], str]]:
        """(id, input, outcome) of a ruleset's newest decisions: just what a replay needs."""
        stmt = (select(DecisionRow.id, DecisionRow.input, DecisionRow.outcome)
                .where(DecisionRow.ruleset_id == ruleset_id)
                .order_by(DecisionRow.evaluated_at.desc(), DecisionRow.id.desc())
                .limit(limit))
        return [(row.id, row.input, row.outcome) for row in self.session.execute(stmt)]

    def get_escalation(self, escalation_id: str, *, for_update: bool = False
                       ) -> EscalationRow | None:
        """One escalation by id, optionally locked."""
        stmt = select(EscalationRow).where(EscalationRow.id == escalation_id)
        if for_update:
            stmt = stmt.with_for_update(of=EscalationRow)
        row = self.session.scalars(stmt).unique().first()
        if row is not None and for_update:
            self.session.expire_all()
        return row

    def list_escalations(self, *, status: str | None = None, ruleset_id: int | None = None,
                         overdue_at: datetime | None = None,
                         limit: int = 1000) -> Sequence[EscalationRow]:
        """Escalations, oldest first; ``overdue_at`` keeps open ones past due at that time."""
        # Each escalation is shown with its decision: load them in one more query, not one each.
        stmt = select(EscalationRow).options(selectinload(EscalationRow.decision))
        if status is not None:
            stmt = stmt.where(EscalationRow.status == status)
        if ruleset_id is not None:
            stmt = stmt.where(EscalationRow.ruleset_id == ruleset_id)
        if overdue_at is not None:
            stmt = stmt.where(EscalationRow.status == "open",
                              EscalationRow.due_at.is_not(None),
                              EscalationRow.due_at < overdue_at)
        stmt = stmt.order_by(EscalationRow.created_at, EscalationRow.id).limit(limit)
        return self.session.scalars(stmt).unique().all()


class LiveStateRepository:
    """What every process keeps in memory for the evaluate path, and the generation counter
    that tells processes when to reload it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def generation(self) -> int:
        """The current generation (0 before the first change)."""
        value = self.session.scalar(select(LiveGenerationRow.value).where(
            LiveGenerationRow.id == 1))
        return int(value or 0)

    def bump(self) -> None:
        """Moves the generation on, in the caller's transaction (so it commits or rolls back
        with the change it announces)."""
        postgres = self.session.get_bind().dialect.name == "postgresql"
        dialect_insert = postgresql.insert if postgres else sqlite.insert
        table: Table = LiveGenerationRow.__table__  # type: ignore[assignment]
        stmt = dialect_insert(table).values(id=1, value=1)
        self.session.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={"value": table.c.value + 1}))

    def active_versions(self) -> Sequence[tuple[int, str, VersionRow | None]]:
        """(ruleset id, name, active version or None) of every ruleset."""
        stmt = (select(RulesetRow.id, RulesetRow.name, VersionRow)
                .outerjoin(VersionRow, and_(VersionRow.ruleset_id == RulesetRow.id,
                                            VersionRow.status == ACTIVE)))
        return [(row[0], row[1], row[2]) for row in self.session.execute(stmt)]

    def live_tokens(self) -> Sequence[tuple[str, str, bool, bool]]:
        """(token hash, principal name, is_admin, is_automation) of every usable token."""
        stmt = (select(ApiTokenRow.token_hash, PrincipalRow.name, PrincipalRow.is_admin,
                       PrincipalRow.is_automation)
                .join(PrincipalRow, PrincipalRow.id == ApiTokenRow.principal_id)
                .where(ApiTokenRow.revoked_at.is_(None), PrincipalRow.revoked_at.is_(None)))
        return [(r[0], r[1], bool(r[2]), bool(r[3])) for r in self.session.execute(stmt)]

    def scheduled_times(self) -> Sequence[datetime | None]:
        """``effective_at`` of every approved (scheduled) version; None: due at once."""
        return list(self.session.scalars(select(VersionRow.effective_at).where(
            VersionRow.status == "approved")))
