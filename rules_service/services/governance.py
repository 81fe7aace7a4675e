"""Governance use cases: propose, sign off, withdraw, activate, roll back, and the reads.

Each function is one use case. It takes a fresh ``UnitOfWork`` (one per request or
thread), plain arguments and the acting principal's name; it returns views from
``services.views`` and raises domain errors. Every transition locks the ruleset's row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and writes its
audit event in the same transaction.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules_service.adapters.orm import RulesetRow, SignoffRow, VersionRow
from rules_service.adapters.ruleset_files import load_ruleset_definition, load_ruleset_text
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import lifecycle
from rules_service.domain.errors import (
    Conflict,
    NotFound,
    RequestInvalid,
    RulesetInvalid,
    Unauthenticated,
)
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.lifecycle import (
    SYSTEM_ACTOR,
    Actor,
    AuditAction,
    SignoffDecision,
    VersionStatus,
)
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.testing import failing_tests_as_problems, run_tests
from rules_service.services import events
from rules_service.services.views import (
    AuditEventView,
    RollbackResult,
    RulesetDetail,
    RulesetSummary,
    ScheduledVersion,
    SignoffView,
    VersionView,
)

# --------------------------------------------------------------------------- helpers


class _RulesetCache:
    """Parsed rulesets by content hash: versions are immutable, so entries never go stale."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, Ruleset] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, row: VersionRow) -> Ruleset:
        with self._lock:
            found = self._items.get(row.content_hash)
            if found is not None:
                self._items.move_to_end(row.content_hash)
                return found
        ruleset = load_ruleset_definition(dict(row.definition),
                                          f"{row.ruleset.name} version {row.number}")
        with self._lock:
            self._items[row.content_hash] = ruleset
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ruleset


_cache = _RulesetCache()


def ruleset_of(row: VersionRow) -> Ruleset:
    """The parsed ruleset a stored version holds (cached by content hash)."""
    return _cache.get(row)


def resolve_actor(uow: UnitOfWork, name: str) -> Actor:
    """The acting principal, inside the caller's transaction; 401 when unknown or revoked."""
    row = uow.principals.get(name)
    if row is None or row.revoked_at is not None:
        raise Unauthenticated(f"no such principal, or revoked: {name}")
    return Actor(row.name, row.is_admin, row.is_automation)


def active_principal_names(uow: UnitOfWork) -> set[str]:
    """Names of the principals that exist and are not revoked; call inside a transaction."""
    return {p.name for p in uow.principals.all() if p.revoked_at is None}


def _ruleset_row(uow: UnitOfWork, name: str, *, lock: bool = False) -> RulesetRow:
    row = uow.rulesets.get_for_update(name) if lock else uow.rulesets.get(name)
    if row is None:
        raise NotFound(f"no ruleset named {name}")
    return row


def _version_row(uow: UnitOfWork, rs: RulesetRow, number: int) -> VersionRow:
    row = uow.versions.get(rs.id, number)
    if row is None:
        raise NotFound(f"ruleset {rs.name} has no version {number}")
    return row


def _authority_row(uow: UnitOfWork, version: VersionRow) -> VersionRow:
    """Whose owners govern a version: its base (the active one when proposed), else itself."""
    if version.base_version is not None:
        base = uow.versions.get(version.ruleset_id, version.base_version)
        if base is not None:
            return base
    return version


def _active_number(uow: UnitOfWork, ruleset_id: int) -> int | None:
    active = uow.versions.active(ruleset_id)
    return active.number if active is not None else None


def _version_view(uow: UnitOfWork, row: VersionRow) -> VersionView:
    authority = ruleset_of(_authority_row(uow, row))
    holders = {role: list(authority.holders_of(role)) for role in authority.signoff}
    return VersionView(
        ruleset=row.ruleset.name, version=row.number, status=row.status, author=row.author,
        note=row.note, base_version=row.base_version, content_hash=row.content_hash,
        effective_at=row.effective_at, created_at=row.created_at, approved_at=row.approved_at,
        activated_at=row.activated_at, closed_at=row.closed_at,
        required_signoffs=tuple(authority.signoff), signoff_holders=holders,
        signoffs=tuple(SignoffView(s.role, s.principal, s.decision, s.comment, s.at)
                       for s in row.signoffs),
        content=row.content, definition=dict(row.definition))


def owners_dict(ruleset: Ruleset) -> dict[str, dict[str, str | None]]:
    return {role: {"primary": h.primary, "backup": h.backup}
            for role, h in ruleset.owners.items()}


def _audit(uow: UnitOfWork, rs: RulesetRow, version: int | None, action: AuditAction,
           actor: str, now: datetime, comment: str = "",
           details: dict[str, Any] | None = None) -> None:
    # Every transition is audited here, and any of them may change what processes keep in
    # memory (the active version, the next scheduled activation): announce it with the event.
    uow.audit.add(rs.id, version, action.value, actor, now, comment, details)
    uow.live_changed()
    events.version_event(uow, rs.id, version, action, actor, now, comment, details)


def _mark_stale(uow: UnitOfWork, rs: RulesetRow, version: VersionRow, active: int | None,
                actor: str, now: datetime) -> None:
    version.status = VersionStatus.STALE.value
    version.closed_at = now
    uow.session.flush()
    _audit(uow, rs, version.number, AuditAction.STALE, actor, now,
           details={"base_version": version.base_version, "active_version": active})


def _make_active(uow: UnitOfWork, rs: RulesetRow, version: VersionRow, action: AuditAction,
                 actor: str, now: datetime, comment: str = "",
                 details: dict[str, Any] | None = None) -> int | None:
    """Supersedes the active version, activates ``version``; returns the superseded number.

    Open versions based on anything but the new active version can never activate now,
    so they become stale at once rather than surprising their signers later.
    """
    previous = uow.versions.active(rs.id)
    previous_number = previous.number if previous is not None else None
    if previous is not None:
        previous.status = VersionStatus.SUPERSEDED.value
        previous.closed_at = now
        # Flush before the new activation: the one-active-version index checks each row.
        uow.session.flush()
        _audit(uow, rs, previous.number, AuditAction.SUPERSEDED, actor, now,
               details={"by_version": version.number})
    version.status = VersionStatus.ACTIVE.value
    version.activated_at = now
    version.closed_at = None
    uow.session.flush()
    _audit(uow, rs, version.number, action, actor, now, comment,
           {"previous_version": previous_number, **(details or {})})
    rs.title = ruleset_of(version).title
    for other in uow.versions.open_versions(rs.id):
        if other.id != version.id and lifecycle.is_stale(other.base_version, version.number):
            _mark_stale(uow, rs, other, version.number, actor, now)
    return previous_number


def _activate_due_in(uow: UnitOfWork, rs: RulesetRow, now: datetime, actor: str) -> list[int]:
    """Activates the ruleset's approved versions that are due; caller holds the lock."""
    activated: list[int] = []
    for version in uow.versions.open_versions(rs.id):
        if version.status != VersionStatus.APPROVED.value:
            continue
        if not lifecycle.is_due(version.effective_at, now):
            continue
        active = _active_number(uow, rs.id)
        if lifecycle.is_stale(version.base_version, active):
            _mark_stale(uow, rs, version, active, actor, now)
            continue
        _make_active(uow, rs, version, AuditAction.ACTIVATED, actor, now,
                     details={"scheduled_for": version.effective_at.isoformat()
                              if version.effective_at else None})
        activated.append(version.number)
    return activated


# --------------------------------------------------------------------------- scheduling


def activate_due(uow: UnitOfWork, now: datetime | None = None) -> list[tuple[str, int]]:
    """Activates every approved version whose effective time has come; idempotent, race-safe.

    Called at the start of every service call, so a scheduled version is active from the
    first read after its time. Returns (ruleset, version) for each activation made.
    """
    now = now or uow.now()
    with uow.readonly():
        names = uow.versions.due_ruleset_names(now)
    done: list[tuple[str, int]] = []
    for name in names:
        with uow:
            rs = uow.rulesets.get_for_update(name)
            if rs is None:
                continue
            # Re-checked under the lock: another caller may have activated it already.
            numbers = _activate_due_in(uow, rs, now, SYSTEM_ACTOR)
            uow.commit()
        done.extend((name, n) for n in numbers)
    return done


# --------------------------------------------------------------------------- transitions


def _parse_proposal(name: str, content: str | None,
                    definition: dict[str, Any] | None) -> tuple[Ruleset, str]:
    if (content is None) == (definition is None):
        raise RequestInvalid([Problem("content", "give either content (the ruleset file's "
                                                 "YAML or JSON text) or definition, not both")])
    if content is not None:
        if not isinstance(content, str) or not content.strip():
            raise RequestInvalid([Problem("content", "content must be non-empty text")])
        ruleset = load_ruleset_text(content, f"{name} (proposed)")
        text = content
    else:
        if not isinstance(definition, dict):
            raise RequestInvalid([Problem("definition", "definition must be an object")])
        ruleset = load_ruleset_definition(definition, f"{name} (proposed)")
        text = json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
    if ruleset.name != name:
        raise RulesetInvalid([Problem("name", f"the content is ruleset {ruleset.name!r}, but "
                                              f"it is proposed as a version of {name!r}")])
    return ruleset, text


def propose_version(uow: UnitOfWork, evaluator: Evaluator, name: str, *,
                    content: str | None = None, definition: dict[str, Any] | None = None,
                    note: str = "", effective_at: datetime | None = None,
                    base_version: int | None = None, actor: str) -> VersionView:
    """Stores a new pending version after checking authority, validity and embedded tests.

    403 unless maintainer/business_owner of the active version (or admin; a first version:
    admin only); 422 invalid content, owners who are not principals (each named) or a
    failing embedded test; 409 identical to the
    active version (``identical_to_active``) or to an open one (``identical_to_pending``),
    or ``stale_base`` when ``base_version`` (the version the author started from) is not
    the newest; 422 when no such base version exists.
    """
    if effective_at is not None:
        effective_at = lifecycle.ensure_utc(effective_at)
    activate_due(uow)
    with uow.readonly():
        who = resolve_actor(uow, actor)
        rs = uow.rulesets.get(name)
        active = uow.versions.active(rs.id) if rs is not None else None
        lifecycle.check_can_propose(who, ruleset_of(active) if active is not None else None)
    ruleset, text = _parse_proposal(name, content, definition)
    with uow.readonly():
        unknown = lifecycle.owner_problems(ruleset, active_principal_names(uow))
    if unknown:
        raise RulesetInvalid(unknown)
    problems = failing_tests_as_problems(run_tests(ruleset, evaluator))
    if problems:
        raise RulesetInvalid(problems)
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        rs = uow.rulesets.get_or_create_for_update(name, ruleset.title)
        active = uow.versions.active(rs.id)
        # Authority again under the lock: the active version may have changed meanwhile.
        lifecycle.check_can_propose(who, ruleset_of(active) if active is not None else None)
        if base_version is not None:
            _check_base(uow, rs, base_version)
        digest = ruleset.content_hash
        if active is not None and active.content_hash == digest:
            raise Conflict("identical_to_active", f"the content is identical to the active "
                           f"version {active.number} of {name}")
        for other in uow.versions.open_versions(rs.id):
            if other.content_hash == digest:
                raise Conflict("identical_to_pending", f"version {other.number} of {name} "
                               f"has this content already and is {other.status}")
        row = uow.versions.add(VersionRow(
            ruleset_id=rs.id, number=uow.versions.next_number(rs.id),
            status=VersionStatus.PENDING.value, content=text, definition=ruleset.definition,
            content_hash=digest, author=who.name, note=note or "",
            base_version=active.number if active is not None else None,
            effective_at=effective_at, created_at=now))
        _audit(uow, rs, row.number, AuditAction.PROPOSED, who.name, now, note or "",
               {"base_version": row.base_version, "started_from": base_version,
                "content_hash": digest,
                "effective_at": effective_at.isoformat() if effective_at else None})
        view = _version_view(uow, row)
        uow.commit()
    return view


def _check_base(uow: UnitOfWork, rs: RulesetRow, base_version: int) -> None:
    """The author's starting point exists and nothing newer has been proposed since."""
    rows = list(uow.versions.for_ruleset(rs.id))
    if all(v.number != base_version for v in rows):
        raise RequestInvalid([Problem("base_version", f"ruleset {rs.name} has no version "
                                                      f"{base_version}")])
    lifecycle.check_base_is_newest(base_version, [
        lifecycle.VersionFact(v.number, VersionStatus(v.status), v.author, v.note)
        for v in rows])


def sign_off(uow: UnitOfWork, name: str, number: int, *, decision: str, comment: str = "",
             role: str | None = None, actor: str) -> VersionView:
    """Records one role's approval or rejection; may approve, reject or activate the version.

    403 for the author, a non-holder, or an automation; 409 ``not_pending``, ``stale``,
    ``already_signed_off``, ``role_already_signed_off``. ``role`` picks which of several
    held sign-off roles to fill (default: the first unfilled one).
    """
    try:
        verdict = SignoffDecision(decision)
    except ValueError:
        raise RequestInvalid([Problem("decision", f"must be approve or reject, not "
                                                  f"{decision!r}")]) from None
    activate_due(uow)
    stale_error: Conflict | None = None
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        rs = _ruleset_row(uow, name, lock=True)
        version = _version_row(uow, rs, number)
        lifecycle.check_signable(VersionStatus(version.status))
        authority = ruleset_of(_authority_row(uow, version))
        filled = {s.role: s.principal for s in version.signoffs}
        chosen = lifecycle.choose_signoff_role(who, version.author, authority, filled, role)
        version.signoffs.append(SignoffRow(role=chosen, principal=who.name,
                                           decision=verdict.value, comment=comment or "",
                                           at=now))
        uow.session.flush()
        _audit(uow, rs, number, AuditAction.SIGNED_OFF, who.name, now, comment or "",
               {"role": chosen, "decision": verdict.value})
        decisions = {s.role: SignoffDecision(s.decision) for s in version.signoffs}
        outcome = lifecycle.status_after_signoffs(authority.signoff, decisions)
        if outcome is VersionStatus.REJECTED:
            version.status = outcome.value
            version.closed_at = now
            _audit(uow, rs, number, AuditAction.REJECTED, who.name, now, comment or "",
                   {"role": chosen})
        elif outcome is VersionStatus.APPROVED:
            active = _active_number(uow, rs.id)
            if lifecycle.is_stale(version.base_version, active):
                _mark_stale(uow, rs, version, active, who.name, now)
                stale_error = Conflict(
                    "stale", f"version {number} was based on version {version.base_version}, "
                    f"but version {active} is active now; propose the change again",
                    [{"base_version": version.base_version, "active_version": active}])
            else:
                version.status = outcome.value
                version.approved_at = now
                uow.session.flush()
                _audit(uow, rs, number, AuditAction.APPROVED, who.name, now,
                       details={"signoffs": {r: filled_by for r, filled_by in
                                             ((s.role, s.principal) for s in version.signoffs)}})
                if lifecycle.is_due(version.effective_at, now):
                    _make_active(uow, rs, version, AuditAction.ACTIVATED, who.name, now)
        view = _version_view(uow, version)
        uow.commit()
    if stale_error is not None:
        # The sign-off and the stale status are recorded; the caller still learns it failed.
        raise stale_error
    return view


def withdraw_version(uow: UnitOfWork, name: str, number: int, *, comment: str = "",
                     actor: str) -> VersionView:
    """The author takes back a pending (or approved, not yet active) version."""
    activate_due(uow)
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        rs = _ruleset_row(uow, name, lock=True)
        version = _version_row(uow, rs, number)
        lifecycle.check_can_withdraw(who, version.author, VersionStatus(version.status))
        version.status = VersionStatus.WITHDRAWN.value
        version.closed_at = now
        uow.session.flush()
        _audit(uow, rs, number, AuditAction.WITHDRAWN, who.name, now, comment or "")
        view = _version_view(uow, version)
        uow.commit()
    return view


def rollback(uow: UnitOfWork, name: str, *, to_version: int, reason: str,
             actor: str) -> RollbackResult:
    """Makes an earlier, once-active (superseded) version active again, with a reason.

    403 unless operations_owner/business_owner of the active version or admin; 404 unknown
    version; 409 ``already_active`` or ``not_rollback_target`` (never active).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise RequestInvalid([Problem("reason", "a rollback needs a reason")])
    activate_due(uow)
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        rs = _ruleset_row(uow, name, lock=True)
        active = uow.versions.active(rs.id)
        lifecycle.check_can_rollback(who, ruleset_of(active) if active is not None else None)
        target = _version_row(uow, rs, to_version)
        if target.status == VersionStatus.ACTIVE.value:
            raise Conflict("already_active", f"version {to_version} of {name} is already "
                                             f"active")
        if target.status != VersionStatus.SUPERSEDED.value:
            raise Conflict("not_rollback_target", f"version {to_version} of {name} was never "
                           f"active (it is {target.status}); only a superseded version can "
                           f"be rolled back to")
        previous = _make_active(uow, rs, target, AuditAction.ROLLED_BACK, who.name, now,
                                reason.strip(), {"from_version": active.number
                                                 if active is not None else None,
                                                 "to_version": to_version})
        uow.commit()
    return RollbackResult(name, to_version, previous)


# --------------------------------------------------------------------------- reads


def _summary(rs: RulesetRow, active: VersionRow | None, open_rows: list[VersionRow],
             latest: int | None) -> RulesetSummary:
    return RulesetSummary(
        name=rs.name, title=rs.title,
        active_version=active.number if active is not None else None,
        pending_versions=tuple(v.number for v in open_rows
                               if v.status == VersionStatus.PENDING.value),
        scheduled_versions=tuple(ScheduledVersion(v.number, v.effective_at) for v in open_rows
                                 if v.status == VersionStatus.APPROVED.value),
        latest_version=latest, created_at=rs.created_at)


def list_rulesets(uow: UnitOfWork) -> list[RulesetSummary]:
    """Every ruleset with its active, pending and scheduled versions."""
    activate_due(uow)
    with uow.readonly():
        actives = uow.versions.active_by_ruleset()
        opens = uow.versions.open_by_ruleset()
        out = []
        for rs in uow.rulesets.list_all():
            newest = uow.versions.newest(rs.id)
            out.append(_summary(rs, actives.get(rs.id), opens.get(rs.id, []),
                                newest.number if newest is not None else None))
        return out


def get_ruleset(uow: UnitOfWork, name: str) -> RulesetDetail:
    """One ruleset: owners and sign-off roles (of the active version, else the newest)."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        rows = list(uow.versions.for_ruleset(rs.id))
        active = next((v for v in rows if v.status == VersionStatus.ACTIVE.value), None)
        governing = active or (rows[-1] if rows else None)
        ruleset = ruleset_of(governing) if governing is not None else None
        summary = _summary(rs, active, [v for v in rows if VersionStatus(v.status).is_open],
                           rows[-1].number if rows else None)
        return RulesetDetail(
            summary=summary,
            description=ruleset.description if ruleset is not None else "",
            owners=owners_dict(ruleset) if ruleset is not None else {},
            signoff=tuple(ruleset.signoff) if ruleset is not None else (),
            versions=tuple(_version_view(uow, v) for v in rows))


def list_versions(uow: UnitOfWork, name: str) -> list[VersionView]:
    """Every version of a ruleset, oldest first."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        return [_version_view(uow, v) for v in uow.versions.for_ruleset(rs.id)]


def get_version(uow: UnitOfWork, name: str, number: int) -> VersionView:
    """One version with its content, sign-offs and required sign-offs."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        return _version_view(uow, _version_row(uow, rs, number))


def list_audit_events(uow: UnitOfWork, name: str, *,
                      version: int | None = None) -> list[AuditEventView]:
    """A ruleset's audit trail in the order things happened."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        return [AuditEventView(e.id, rs.name, e.version, e.action, e.actor, e.comment,
                               dict(e.details or {}), e.at)
                for e in uow.audit.for_ruleset(rs.id, version)]


@dataclass(frozen=True)
class LoadedVersion:
    """A stored version parsed back into a Ruleset, for evaluation, diff and impact."""

    name: str
    version: int
    status: str
    ruleset: Ruleset
    ruleset_id: int = 0


def load_version(uow: UnitOfWork, name: str, version: int | None = None) -> LoadedVersion:
    """The ruleset of a version (default: the active one); 404 unknown, 409 none active."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        if version is None:
            row = uow.versions.active(rs.id)
            if row is None:
                raise Conflict("no_active_version", f"ruleset {name} has no active version")
        else:
            row = _version_row(uow, rs, version)
        return LoadedVersion(rs.name, row.number, row.status, ruleset_of(row), rs.id)
