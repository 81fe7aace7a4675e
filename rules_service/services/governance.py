"""Governance use cases: propose, sign off, withdraw, activate, roll back, pause and
resume, and the reads.

Each function is one use case. It takes a fresh unit of work (one per request or thread),
plain arguments and the acting principal's name; it returns views from
``services.views`` and raises domain errors. A transition loads the ruleset's record
(locking its row: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
calls one method of the ``RulesetRecord``/``Version`` aggregates (which check authority
and state and record their audit events), saves the record and publishes its events, all
in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

# Other use cases parse stored versions through this name.
from rules_service.adapters.ruleset_cache import ruleset_of as ruleset_of
from rules_service.adapters.ruleset_files import load_ruleset_definition, load_ruleset_text
from rules_service.domain import lifecycle, review_rhythm
from rules_service.domain import pause as pausing
from rules_service.domain.errors import (
    Conflict,
    NotFound,
    RequestInvalid,
    RulesetInvalid,
    Unauthenticated,
)
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.lifecycle import SYSTEM_ACTOR, Actor, SignoffDecision, VersionStatus
from rules_service.domain.notifications import VERSION_EVENTS
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.shadow import ENDING_ACTIONS, end_reason_for
from rules_service.domain.testing import failing_tests_as_problems, run_tests
from rules_service.domain.versions import (
    LoadedVersion,
    RulesetEntry,
    RulesetRecord,
    Version,
    stale_conflict,
)
from rules_service.services.unit_of_work import AbstractUnitOfWork
from rules_service.services.views import (
    AuditEventView,
    RollbackResult,
    RulesetDetail,
    RulesetSummary,
    ScheduledVersion,
    VersionView,
    version_view,
)

# --------------------------------------------------------------------------- helpers


def resolve_actor(uow: AbstractUnitOfWork, name: str | Actor) -> Actor:
    """The acting principal, inside the caller's transaction; 401 when unknown or revoked.
    An ``Actor`` given as such (the operator at the database's console) stands as it is."""
    if isinstance(name, Actor):
        return name
    who = uow.actors.get(name)
    if who is None:
        raise Unauthenticated(f"no such principal, or revoked: {name}")
    return who


def active_principal_names(uow: AbstractUnitOfWork) -> set[str]:
    """Names of the principals that exist and are not revoked; call inside a transaction."""
    return uow.actors.active_names()


def ruleset_named(uow: AbstractUnitOfWork, name: str) -> RulesetEntry:
    """The ruleset by name; 404 when there is none."""
    entry = uow.rulesets.get(name)
    if entry is None:
        raise NotFound(f"no ruleset named {name}")
    return entry


def version_named(uow: AbstractUnitOfWork, rs: RulesetEntry, number: int) -> Version:
    """One version of a ruleset; 404 when there is none."""
    version = uow.versions.get(rs.id, number)
    if version is None:
        raise NotFound(f"ruleset {rs.name} has no version {number}")
    return version


def _locked(uow: AbstractUnitOfWork, name: str) -> RulesetRecord:
    record = uow.rulesets.get_for_update(name)
    if record is None:
        raise NotFound(f"no ruleset named {name}")
    return record


def _version_in(uow: AbstractUnitOfWork, record: RulesetRecord, number: int) -> Version:
    version = uow.rulesets.version_in(record, number)
    if version is None:
        raise NotFound(f"ruleset {record.name} has no version {number}")
    return version


def owners_dict(ruleset: Ruleset) -> dict[str, dict[str, str | None]]:
    """Each owner role's primary and backup holder."""
    return {role: {"primary": h.primary, "backup": h.backup}
            for role, h in ruleset.owners.items()}


def _store(uow: AbstractUnitOfWork, record: RulesetRecord) -> None:
    """Saves the record and publishes its events, in the caller's transaction.

    Every event is audited, announces a change of what processes keep in memory (the
    active version, the next scheduled activation), and most tell subscribers. A version
    activated, rejected, withdrawn or gone stale leaves shadow mode.
    """
    uow.rulesets.save(record)
    for event in record.events:
        uow.audit.add(record.id, event)
        uow.live_changed()
        if event.action in ENDING_ACTIONS and event.version is not None:
            uow.shadows.end_for_version(record.id, event.version, event.at, event.actor,
                                        end_reason_for(event.action))
        event_type = VERSION_EVENTS.get(event.action)
        if event_type is not None:
            uow.outbox.add(event_type, record.id, event.at,
                           {"version": event.version, "actor": event.actor,
                            "comment": event.comment or "", "details": dict(event.details)})
    record.events.clear()


# --------------------------------------------------------------------------- scheduling


def activate_due(uow: AbstractUnitOfWork, now: datetime | None = None
                 ) -> list[tuple[str, int]]:
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
            record = uow.rulesets.get_for_update(name)
            if record is None:
                continue
            # Re-checked under the lock: another caller may have activated it already.
            numbers = record.activate_due(now, SYSTEM_ACTOR)
            _store(uow, record)
            uow.commit()
        done.extend((name, n) for n in numbers)
    return done


# --------------------------------------------------------------------------- transitions


def parse_proposal(name: str, content: str | None,
                   definition: dict[str, Any] | None) -> tuple[Ruleset, str]:
    """The ruleset a proposal (file text or definition) holds, and the text to store.

    422 unless exactly one of them is given, it is a valid ruleset, and it is named
    ``name``.
    """
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


def propose_version(uow: AbstractUnitOfWork, evaluator: Evaluator, name: str, *,
                    content: str | None = None, definition: dict[str, Any] | None = None,
                    note: str = "", effective_at: datetime | None = None,
                    base_version: int | None = None, actor: str) -> VersionView:
    """Stores a new pending version after checking authority, validity and embedded tests.

    403 unless maintainer/business_owner of the active version (or admin; a first version:
    admin only); 422 invalid content, owners who are not principals (each named) or a
    failing embedded test; 409 identical to the
    active version (``identical_to_active``) or to an open one (``identical_to_pending``),
    or ``stale_base`` when ``base_version`` (the version the author started from) is not
    the newest; 422 when no such base version exists. The view's ``warnings`` name the
    other open versions on the same base: whichever goes live first makes the others stale.
    """
    if effective_at is not None:
        effective_at = lifecycle.ensure_utc(effective_at)
    activate_due(uow)
    with uow.readonly():
        who = resolve_actor(uow, actor)
        rs = uow.rulesets.get(name)
        active = uow.versions.active(rs.id) if rs is not None else None
        lifecycle.check_can_propose(who, active.ruleset if active is not None else None)
    ruleset, text = parse_proposal(name, content, definition)
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
        record = uow.rulesets.get_or_create_for_update(name, ruleset.title)
        # Authority again under the lock: the active version may have changed meanwhile.
        version = record.propose(who, ruleset, text, now, note=note or "",
                                 effective_at=effective_at, started_from=base_version)
        warnings = tuple(w.to_dict() for w in record.open_alongside(version))
        _store(uow, record)
        view = replace(version_view(version), warnings=warnings)
        uow.commit()
    return view


def sign_off(uow: AbstractUnitOfWork, name: str, number: int, *, decision: str,
             comment: str = "", role: str | None = None, actor: str) -> VersionView:
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
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        record = _locked(uow, name)
        version = _version_in(uow, record, number)
        record.sign_off(version, who, verdict, now, comment=comment or "", role=role)
        _store(uow, record)
        view = version_view(version)
        uow.commit()
    if version.status is VersionStatus.STALE:
        # The sign-off and the stale status are recorded; the caller still learns it failed.
        raise stale_conflict(version, record.active_number)
    return view


def withdraw_version(uow: AbstractUnitOfWork, name: str, number: int, *, comment: str = "",
                     actor: str) -> VersionView:
    """The author takes back a pending (or approved, not yet active) version."""
    activate_due(uow)
    with uow:
        now = uow.now()
        who = resolve_actor(uow, actor)
        record = _locked(uow, name)
        version = _version_in(uow, record, number)
        record.withdraw(version, who, now, comment=comment or "")
        _store(uow, record)
        view = version_view(version)
        uow.commit()
    return view


def rollback(uow: AbstractUnitOfWork, name: str, *, to_version: int, reason: str,
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
        record = _locked(uow, name)
        record.check_can_roll_back(who)
        target = _version_in(uow, record, to_version)
        previous = record.roll_back_to(target, who, reason.strip(), now)
        _store(uow, record)
        uow.commit()
    return RollbackResult(name, to_version, previous)


def pause(uow: AbstractUnitOfWork, name: str, *, reason: str,
          actor: str | Actor) -> RulesetDetail:
    """Stops automatic decisions of ``name``: from now on (within the live state's
    freshness bound in every process) each decision escalates to the approver with
    ``reason``. 403 unless operations_owner/business_owner of the active version or admin;
    409 ``already_paused``; 422 without a reason. Audited and told as ``ruleset.paused``."""
    activate_due(uow)
    with uow:
        who = resolve_actor(uow, actor)
        record = _locked(uow, name)
        record.pause(who, reason, uow.now())
        _store(uow, record)
        uow.commit()
    return get_ruleset(uow, name)


def may_pause(uow: AbstractUnitOfWork, name: str, actor: str) -> bool:
    """Whether ``actor`` may pause or resume ``name`` now (what the pages offer)."""
    with uow.readonly():
        who = resolve_actor(uow, actor)
        rs = ruleset_named(uow, name)
        active = uow.versions.active(rs.id)
        return active is not None and pausing.may_pause(who, active.ruleset)


def resume(uow: AbstractUnitOfWork, name: str, *, actor: str | Actor) -> RulesetDetail:
    """The rules of ``name`` decide again; the same people as ``pause``; 409
    ``not_paused``. Audited and told as ``ruleset.resumed``."""
    activate_due(uow)
    with uow:
        who = resolve_actor(uow, actor)
        record = _locked(uow, name)
        record.resume(who, uow.now())
        _store(uow, record)
        uow.commit()
    return get_ruleset(uow, name)


# --------------------------------------------------------------------------- reads


def _summary(rs: RulesetEntry, active: Version | None, open_rows: list[Version],
             latest: int | None) -> RulesetSummary:
    return RulesetSummary(
        name=rs.name, title=rs.title,
        active_version=active.number if active is not None else None,
        pending_versions=tuple(v.number for v in open_rows
                               if v.status is VersionStatus.PENDING),
        scheduled_versions=tuple(ScheduledVersion(v.number, v.effective_at) for v in open_rows
                                 if v.status is VersionStatus.APPROVED),
        latest_version=latest, created_at=rs.created_at, paused=rs.paused,
        review_due_at=review_rhythm.due_at(active.ruleset, active.activated_at)
        if active is not None else None)


def list_rulesets(uow: AbstractUnitOfWork) -> list[RulesetSummary]:
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


def get_ruleset(uow: AbstractUnitOfWork, name: str) -> RulesetDetail:
    """One ruleset: owners and sign-off roles (of the active version, else the newest)."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        rows = list(uow.versions.for_ruleset(rs.id))
        active = next((v for v in rows if v.status is VersionStatus.ACTIVE), None)
        governing = active or (rows[-1] if rows else None)
        ruleset = governing.ruleset if governing is not None else None
        summary = _summary(rs, active, [v for v in rows if v.is_open],
                           rows[-1].number if rows else None)
        return RulesetDetail(
            summary=summary,
            description=ruleset.description if ruleset is not None else "",
            owners=owners_dict(ruleset) if ruleset is not None else {},
            signoff=tuple(ruleset.signoff) if ruleset is not None else (),
            versions=tuple(version_view(v) for v in rows))


def list_versions(uow: AbstractUnitOfWork, name: str) -> list[VersionView]:
    """Every version of a ruleset, oldest first."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        return [version_view(v) for v in uow.versions.for_ruleset(rs.id)]


def get_version(uow: AbstractUnitOfWork, name: str, number: int) -> VersionView:
    """One version with its content, sign-offs and required sign-offs."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        return version_view(version_named(uow, rs, number))


def list_audit_events(uow: AbstractUnitOfWork, name: str, *,
                      version: int | None = None) -> list[AuditEventView]:
    """A ruleset's audit trail in the order things happened."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        return [AuditEventView(e.id or 0, rs.name, e.version, e.action.value, e.actor,
                               e.comment, dict(e.details or {}), e.at)
                for e in uow.audit.for_ruleset(rs.id, version)]


def load_version(uow: AbstractUnitOfWork, name: str,
                 version: int | None = None) -> LoadedVersion:
    """The ruleset of a version (default: the active one); 404 unknown, 409 none active."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        if version is None:
            found = uow.versions.active(rs.id)
            if found is None:
                raise Conflict("no_active_version", f"ruleset {name} has no active version")
        else:
            found = version_named(uow, rs, version)
        return LoadedVersion(rs.name, found.number, found.status.value, found.ruleset, rs.id)
