"""Repositories: the queries the services need, over one SQLAlchemy session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, cast, func, literal, or_, select
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
from rules_service.adapters.ruleset_cache import parsed
from rules_service.domain.lifecycle import (
    Actor,
    AuditAction,
    SignoffDecision,
    VersionFact,
    VersionStatus,
)
from rules_service.domain.pause import Pause
from rules_service.domain.versions import (
    AuditEvent,
    LoadedVersion,
    RulesetEntry,
    RulesetRecord,
    Signoff,
    Version,
)

ACTIVE = "active"
OPEN_STATUSES = ("pending", "approved")


class VersionRepository:
    """Versions of rulesets, as ``Version`` aggregates; remembers the rows it loaded so
    that ``save`` writes each one back."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[tuple[int, int], VersionRow] = {}

    # ------------------------------------------------------------------ mapping

    def _map(self, rows: Sequence[VersionRow]) -> list[Version]:
        """Aggregates of ``rows``, each with the ruleset whose owners govern it."""
        for row in rows:
            self._rows[(row.ruleset_id, row.number)] = row
        known = {(row.ruleset_id, row.number): row for row in rows}
        missing = {(row.ruleset_id, row.base_version) for row in rows
                   if row.base_version is not None
                   and (row.ruleset_id, row.base_version) not in known}
        if missing:
            bases = self.session.scalars(select(VersionRow).where(or_(*(
                and_(VersionRow.ruleset_id == rid, VersionRow.number == number)
                for rid, number in sorted(missing))))).all()
            for base in bases:
                known[(base.ruleset_id, base.number)] = base
                self._rows.setdefault((base.ruleset_id, base.number), base)
        return [self._to_version(row, known) for row in rows]

    @staticmethod
    def _to_version(row: VersionRow, known: dict[tuple[int, int], VersionRow]) -> Version:
        name = row.ruleset.name
        ruleset = parsed(row.content_hash, row.definition, name, row.number)
        base = (known.get((row.ruleset_id, row.base_version))
                if row.base_version is not None else None)
        authority = (parsed(base.content_hash, base.definition, name, base.number)
                     if base is not None else ruleset)
        return Version(
            ruleset_id=row.ruleset_id, ruleset_name=name, number=row.number,
            status=VersionStatus(row.status), content=row.content,
            definition=dict(row.definition), content_hash=row.content_hash,
            author=row.author, ruleset=ruleset, authority=authority,
            created_at=row.created_at, note=row.note or "", base_version=row.base_version,
            effective_at=row.effective_at, approved_at=row.approved_at,
            activated_at=row.activated_at, closed_at=row.closed_at,
            signoffs=[Signoff(s.role, s.principal, SignoffDecision(s.decision),
                              s.comment or "", s.at) for s in row.signoffs])

    def _one(self, stmt: Select[VersionRow]) -> Version | None:
        row = self.session.scalars(stmt).first()
        return self._map([row])[0] if row is not None else None

    # ------------------------------------------------------------------ reads

    def get(self, ruleset_id: int, number: int) -> Version | None:
        """One version by ruleset and number."""
        return self._one(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id, VersionRow.number == number))

    def for_ruleset(self, ruleset_id: int) -> list[Version]:
        """Every version of a ruleset, oldest first."""
        return self._map(self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id).order_by(VersionRow.number)).all())

    def active(self, ruleset_id: int) -> Version | None:
        """The active version, if any."""
        return self._one(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id, VersionRow.status == ACTIVE))

    def newest(self, ruleset_id: int) -> Version | None:
        """The highest-numbered version, if any."""
        return self._one(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id).order_by(VersionRow.number.desc()))

    def open_versions(self, ruleset_id: int) -> list[Version]:
        """Pending and approved (scheduled) versions, oldest first."""
        return self._map(self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id,
            VersionRow.status.in_(OPEN_STATUSES)).order_by(VersionRow.number)).all())

    def current(self, ruleset_id: int) -> list[Version]:
        """The active and open versions of a ruleset, oldest first."""
        return self._map(self.session.scalars(select(VersionRow).where(
            VersionRow.ruleset_id == ruleset_id,
            VersionRow.status.in_((ACTIVE, *OPEN_STATUSES))).order_by(VersionRow.number)
        ).all())

    def facts(self, ruleset_id: int) -> list[VersionFact]:
        """Number, status, author and note of every version of a ruleset, oldest first."""
        stmt = (select(VersionRow.number, VersionRow.status, VersionRow.author,
                       VersionRow.note)
                .where(VersionRow.ruleset_id == ruleset_id).order_by(VersionRow.number))
        return [VersionFact(r[0], VersionStatus(r[1]), r[2], r[3] or "")
                for r in self.session.execute(stmt)]

    def open_by_ruleset(self) -> dict[int, list[Version]]:
        """Open versions of every ruleset, for listings."""
        out: dict[int, list[Version]] = {}
        rows = self.session.scalars(select(VersionRow).where(
            VersionRow.status.in_(OPEN_STATUSES)).order_by(VersionRow.number)).all()
        for version in self._map(rows):
            out.setdefault(version.ruleset_id, []).append(version)
        return out

    def active_by_ruleset(self) -> dict[int, Version]:
        """The active version of every ruleset that has one."""
        rows = self.session.scalars(select(VersionRow).where(VersionRow.status == ACTIVE)).all()
        return {version.ruleset_id: version for version in self._map(rows)}

    def due_ruleset_names(self, now: datetime) -> list[str]:
        """Names of rulesets with an approved version whose effective time has come."""
        stmt = (select(RulesetRow.name).join(VersionRow, VersionRow.ruleset_id == RulesetRow.id)
                .where(VersionRow.status == "approved",
                       or_(VersionRow.effective_at.is_(None), VersionRow.effective_at <= now))
                .distinct())
        return list(self.session.scalars(stmt).all())

    # ------------------------------------------------------------------ writes

    def save(self, version: Version) -> None:
        """Stores a new version, or writes a loaded one's lifecycle and new sign-offs."""
        key = (version.ruleset_id, version.number)
        row = self._rows.get(key)
        if row is None:
            row = VersionRow(
                ruleset_id=version.ruleset_id, number=version.number,
                status=version.status.value, content=version.content,
                definition=version.definition, content_hash=version.content_hash,
                author=version.author, note=version.note, base_version=version.base_version,
                effective_at=version.effective_at, created_at=version.created_at)
            self.session.add(row)
            self._rows[key] = row
        row.status = version.status.value
        row.approved_at = version.approved_at
        row.activated_at = version.activated_at
        row.closed_at = version.closed_at
        for s in version.signoffs[len(row.signoffs):]:
            row.signoffs.append(SignoffRow(role=s.role, principal=s.principal,
                                           decision=s.decision.value, comment=s.comment,
                                           at=s.at))
        self.session.flush()


class RulesetRepository:
    """Rulesets, and the row lock that serialises every transition of one ruleset."""

    def __init__(self, session: Session, versions: VersionRepository) -> None:
        self.session = session
        self.versions = versions
        self._rows: dict[int, RulesetRow] = {}

    @staticmethod
    def _entry(row: RulesetRow) -> RulesetEntry:
        return RulesetEntry(row.id, row.name, row.title, row.created_at, pause_of(row),
                            row.review_told_at)

    def get(self, name: str) -> RulesetEntry | None:
        """The ruleset by name, or None."""
        row = self.session.scalars(select(RulesetRow).where(RulesetRow.name == name)).first()
        return self._entry(row) if row is not None else None

    def list_all(self) -> list[RulesetEntry]:
        """Every ruleset, by name."""
        return [self._entry(row) for row in
                self.session.scalars(select(RulesetRow).order_by(RulesetRow.name)).all()]

    def _lock(self, name: str) -> RulesetRow | None:
        stmt = select(RulesetRow).where(RulesetRow.name == name).with_for_update()
        row = self.session.execute(stmt).scalars().first()
        if row is not None:
            # The lock may have waited for another transaction: forget anything read before
            # it so that every later query sees that transaction's results.
            self.session.expire_all()
        return row

    def _record(self, row: RulesetRow) -> RulesetRecord:
        self._rows[row.id] = row
        return RulesetRecord(
            id=row.id, name=row.name, title=row.title, created_at=row.created_at,
            loaded=self.versions.current(row.id), history=self.versions.facts(row.id),
            paused=pause_of(row))

    def get_for_update(self, name: str) -> RulesetRecord | None:
        """The ruleset with its active and open versions, its row locked until the
        transaction ends (PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE)."""
        row = self._lock(name)
        return self._record(row) if row is not None else None

    def get_or_create_for_update(self, name: str, title: str) -> RulesetRecord:
        """The locked ruleset, created first when it does not exist (race-safe)."""
        row = self._lock(name)
        if row is None:
            try:
                with self.session.begin_nested():
                    self.session.add(RulesetRow(name=name, title=title))
            except IntegrityError:
                pass  # another transaction created it first; lock theirs
            row = self._lock(name)
            assert row is not None
        return self._record(row)

    def version_in(self, record: RulesetRecord, number: int) -> Version | None:
        """A version of the record by number: the record's own copy when it holds one,
        else loaded and taken into the record."""
        found = record.find(number)
        if found is not None:
            return found
        loaded = self.versions.get(record.id, number)
        return record.adopt(loaded) if loaded is not None else None

    def save(self, record: RulesetRecord) -> None:
        """Writes the record's title and every version it holds."""
        row = self._rows.get(record.id)
        if row is None:
            row = self.session.get(RulesetRow, record.id)
            assert row is not None
        row.title = record.title
        pause = record.paused
        row.paused_by = pause.by if pause is not None else None
        row.paused_at = pause.at if pause is not None else None
        row.paused_reason = pause.reason if pause is not None else None
        # The active version last: the one-active-version index checks each row as it is
        # written, so the version it supersedes must step down first.
        versions = sorted(record.loaded,
                          key=lambda v: (v.status is VersionStatus.ACTIVE, v.number))
        for version in versions:
            self.versions.save(version)


    def claim_review(self, ruleset_id: int, activated_at: datetime, now: datetime) -> bool:
        """Marks the review reminder of the version active since ``activated_at`` as told;
        False when it was told already (by this worker or a racing one), so it is told
        once per activation."""
        table: Table = RulesetRow.__table__  # type: ignore[assignment]
        result = self.session.execute(
            table.update()
            .where(table.c.id == ruleset_id,
                   or_(table.c.review_told_at.is_(None),
                       table.c.review_told_at < activated_at))
            .values(review_told_at=now))
        return bool(getattr(result, "rowcount", 0) == 1)


def pause_of(row: RulesetRow) -> Pause | None:
    """The pause a ruleset row holds, or None."""
    if row.paused_at is None:
        return None
    return Pause(row.paused_by or "", row.paused_at, row.paused_reason or "")


class AuditRepository:
    """The audit trail: append-only."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, ruleset_id: int, event: AuditEvent) -> AuditEvent:
        """Appends one event; returns it with its id."""
        row = AuditEventRow(ruleset_id=ruleset_id, version=event.version,
                            action=event.action.value, actor=event.actor,
                            comment=event.comment or "", details=event.details or {},
                            at=event.at)
        self.session.add(row)
        self.session.flush()
        return replace(event, id=row.id)

    def for_ruleset(self, ruleset_id: int, version: int | None = None,
                    action: str | None = None) -> list[AuditEvent]:
        """A ruleset's events in the order they happened."""
        stmt = select(AuditEventRow).where(AuditEventRow.ruleset_id == ruleset_id)
        if version is not None:
            stmt = stmt.where(AuditEventRow.version == version)
        if action is not None:
            stmt = stmt.where(AuditEventRow.action == action)
        return [AuditEvent(e.version, AuditAction(e.action), e.actor, e.at, e.comment or "",
                           dict(e.details or {}), e.id)
                for e in self.session.scalars(stmt.order_by(AuditEventRow.id)).all()]


class ActorRepository:
    """Principals as the lifecycle rules see them: name, admin, automation."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str) -> Actor | None:
        """The principal, or None when unknown or revoked."""
        row = self.session.scalars(select(PrincipalRow).where(PrincipalRow.name == name)).first()
        if row is None or row.revoked_at is not None:
            return None
        return Actor(row.name, row.is_admin, row.is_automation)

    def active_names(self) -> set[str]:
        """Names of the principals that exist and are not revoked."""
        return set(self.session.scalars(select(PrincipalRow.name).where(
            PrincipalRow.revoked_at.is_(None))).all())


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
             limit: int = 100, caller: str | None = None, caller_prefix: str | None = None,
             input_equals: Sequence[tuple[tuple[str, ...], Sequence[Any]]] = ()
             ) -> Sequence[DecisionRow]:
        """Decisions newest first; ``before`` is the (evaluated_at, id) cursor.

        ``input_equals`` keeps decisions whose input holds, at each path, one of the given
        values. The filters apply to rows read newest first along the time index, so a
        page stops as soon as it is full.
        """
        stmt = select(DecisionRow)
        if caller is not None:
            stmt = stmt.where(DecisionRow.caller == caller)
        if caller_prefix:
            stmt = stmt.where(DecisionRow.caller.startswith(caller_prefix, autoescape=True))
        for path, values in input_equals:
            stmt = stmt.where(self._input_equals(path, values))
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

    def _input_equals(self, path: tuple[str, ...], values: Sequence[Any]) -> ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            found = func.jsonb_extract_path(DecisionRow.input, *path)
            return or_(*(found == cast(v, postgresql.JSONB) for v in values))
        where = "$" + "".join(f'."{name}"' for name in path)
        found = func.json_extract(DecisionRow.input, where)
        return or_(*(found == literal(v) for v in values))

    def count_paused(self, ruleset_id: int, since: datetime, until: datetime) -> int:
        """Decisions of a ruleset taken while it was paused, in [since, until) (the
        ruleset's time index bounds the scan to the paused period)."""
        return int(self.session.scalar(
            select(func.count()).select_from(DecisionRow).where(
                DecisionRow.ruleset_id == ruleset_id, DecisionRow.evaluated_at >= since,
                DecisionRow.evaluated_at < until, DecisionRow.paused_outcome.is_not(None)))
            or 0)

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

    def active_versions(self) -> Sequence[tuple[int, str, LoadedVersion | None]]:
        """(ruleset id, name, active version parsed, or None) of every ruleset."""
        stmt = (select(RulesetRow.id, RulesetRow.name, VersionRow)
                .outerjoin(VersionRow, and_(VersionRow.ruleset_id == RulesetRow.id,
                                            VersionRow.status == ACTIVE)))
        out: list[tuple[int, str, LoadedVersion | None]] = []
        for ruleset_id, name, row in self.session.execute(stmt):
            loaded = None if row is None else LoadedVersion(
                name, row.number, row.status,
                parsed(row.content_hash, row.definition, name, row.number), ruleset_id)
            out.append((ruleset_id, name, loaded))
        return out

    def pauses(self) -> dict[str, Pause]:
        """The pause in force of every paused ruleset, by name."""
        rows = self.session.scalars(select(RulesetRow).where(RulesetRow.paused_at.is_not(None)))
        return {row.name: pause for row in rows if (pause := pause_of(row)) is not None}

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
