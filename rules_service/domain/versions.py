"""Versions as aggregates: a ``Version`` and the ``RulesetRecord`` it belongs to.

Everything a version may do, and who may do it, is here. Each transition checks the
actor's authority and the version's state (with the rules in ``lifecycle``), changes the
versions' own fields, and records the audit event it causes. The service loads the
record, calls one method, saves it and publishes ``record.events`` in the same
transaction; nothing here touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules_service.domain import lifecycle
from rules_service.domain import pause as pausing
from rules_service.domain.errors import Conflict, RequestInvalid
from rules_service.domain.lifecycle import (
    Actor,
    AuditAction,
    SignoffDecision,
    VersionFact,
    VersionStatus,
)
from rules_service.domain.pause import Pause
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset


@dataclass(frozen=True)
class Signoff:
    """One role's approval or rejection of a version."""

    role: str
    principal: str
    decision: SignoffDecision
    comment: str
    at: datetime


@dataclass(frozen=True)
class AuditEvent:
    """One transition: who, when, what, why. ``id`` is set once it is stored."""

    version: int | None
    action: AuditAction
    actor: str
    at: datetime
    comment: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class RulesetEntry:
    """A ruleset's own record, without its versions: what listings and lookups need."""

    id: int
    name: str
    title: str
    created_at: datetime
    paused: Pause | None = None
    review_told_at: datetime | None = None
    """When ``ruleset.review_due`` was last told (once per activation)."""


@dataclass(frozen=True)
class LoadedVersion:
    """A stored version parsed back into a Ruleset, for evaluation, diff and impact."""

    name: str
    version: int
    status: str
    ruleset: Ruleset
    ruleset_id: int = 0


@dataclass(frozen=True)
class OpenAlongside:
    """Another open version on the same base as a version: whichever of them goes live
    first makes the other stale."""

    version: int
    author: str
    status: str
    base_version: int | None

    @property
    def message(self) -> str:
        """The warning in words."""
        base = (f"version {self.base_version}" if self.base_version is not None
                else "no active version")
        return (f"version {self.version} by {self.author} is {self.status} on the same "
                f"base ({base}); whichever goes live first makes the other stale, and its "
                f"author must propose it again")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the other version, its author and status, and the warning."""
        return {"code": "open_version_on_base", "version": self.version,
                "author": self.author, "status": self.status,
                "base_version": self.base_version, "message": self.message}


def stale_conflict(version: Version, active: int | None) -> Conflict:
    """409 ``stale``: the version was based on another version than the active one."""
    return Conflict("stale", f"version {version.number} was based on version "
                    f"{version.base_version}, but version {active} is active now; "
                    f"propose the change again",
                    [{"base_version": version.base_version, "active_version": active}])


@dataclass(eq=False)
class Version:
    """One version of a ruleset: immutable content, and a lifecycle that only its own
    methods move on."""

    ruleset_id: int
    ruleset_name: str
    number: int
    status: VersionStatus
    content: str
    definition: dict[str, Any]
    content_hash: str
    author: str
    ruleset: Ruleset = field(repr=False)
    authority: Ruleset = field(repr=False)
    """Whose owners govern this version: its base's (the version active when it was
    proposed), else its own."""
    created_at: datetime
    note: str = ""
    base_version: int | None = None
    effective_at: datetime | None = None
    approved_at: datetime | None = None
    activated_at: datetime | None = None
    closed_at: datetime | None = None
    signoffs: list[Signoff] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list, repr=False)
    """The events this version's transitions caused since it was loaded, in order."""

    # ------------------------------------------------------------------ facts

    @property
    def is_open(self) -> bool:
        """Pending or approved: it may still become active."""
        return self.status.is_open

    def filled_roles(self) -> dict[str, str]:
        """Each sign-off role filled so far, and by whom."""
        return {s.role: s.principal for s in self.signoffs}

    def fact(self) -> VersionFact:
        """What the staleness check needs to know of this version."""
        return VersionFact(self.number, self.status, self.author, self.note)

    def _record(self, action: AuditAction, actor: str, now: datetime, comment: str = "",
                details: dict[str, Any] | None = None) -> AuditEvent:
        event = AuditEvent(self.number, action, actor, now, comment or "", dict(details or {}))
        self.events.append(event)
        return event

    def signoff_roles_open_to(self, actor: Actor) -> list[str]:
        """The missing sign-off roles ``actor`` may give now (none unless pending)."""
        if self.status is not VersionStatus.PENDING:
            return []
        return lifecycle.signoff_roles_open_to(actor, self.author, self.authority,
                                               self.filled_roles())

    @property
    def missing_signoffs(self) -> tuple[str, ...]:
        """Required roles nobody has signed yet."""
        done = {s.role for s in self.signoffs}
        return tuple(r for r in self.authority.signoff if r not in done)

    # ------------------------------------------------------------------ transitions

    def signoff_role(self, actor: Actor, role: str | None = None) -> str:
        """The role ``actor`` would fill signing now; refuses as ``sign_off`` would."""
        lifecycle.check_signable(self.status)
        return lifecycle.choose_signoff_role(actor, self.author, self.authority,
                                             self.filled_roles(), role)

    def sign_off(self, actor: Actor, decision: SignoffDecision, now: datetime, *,
                 comment: str = "", role: str | None = None) -> VersionStatus:
        """Records one role's decision; returns what the sign-offs so far amount to
        (pending, approved or rejected) without acting on it."""
        chosen = self.signoff_role(actor, role)
        self.signoffs.append(Signoff(chosen, actor.name, decision, comment or "", now))
        self._record(AuditAction.SIGNED_OFF, actor.name, now, comment,
                     {"role": chosen, "decision": decision.value})
        decisions = {s.role: s.decision for s in self.signoffs}
        return lifecycle.status_after_signoffs(self.authority.signoff, decisions)

    def reject(self, actor: Actor, now: datetime, *, role: str, comment: str = "") -> None:
        """Closes the version as rejected: ``role`` (a required one) rejected it."""
        self._require_status(VersionStatus.PENDING)
        self.status = VersionStatus.REJECTED
        self.closed_at = now
        self._record(AuditAction.REJECTED, actor.name, now, comment, {"role": role})

    def approve(self, actor: Actor, now: datetime) -> None:
        """Marks the version approved: every required role approved it."""
        self._require_status(VersionStatus.PENDING)
        self.status = VersionStatus.APPROVED
        self.approved_at = now
        self._record(AuditAction.APPROVED, actor.name, now,
                     details={"signoffs": {s.role: s.principal for s in self.signoffs}})

    def withdraw(self, actor: Actor, now: datetime, *, comment: str = "") -> None:
        """The author takes back a pending or approved (scheduled) version."""
        lifecycle.check_can_withdraw(actor, self.author, self.status)
        self.status = VersionStatus.WITHDRAWN
        self.closed_at = now
        self._record(AuditAction.WITHDRAWN, actor.name, now, comment)

    def mark_stale(self, actor: str, now: datetime, active: int | None) -> None:
        """Closes an open version that can never activate: another version is active."""
        self.status = VersionStatus.STALE
        self.closed_at = now
        self._record(AuditAction.STALE, actor, now,
                     details={"base_version": self.base_version, "active_version": active})

    def supersede(self, actor: str, now: datetime, by_version: int) -> None:
        """The active version steps down for ``by_version``."""
        self._require_status(VersionStatus.ACTIVE)
        self.status = VersionStatus.SUPERSEDED
        self.closed_at = now
        self._record(AuditAction.SUPERSEDED, actor, now, details={"by_version": by_version})

    def activate(self, actor: str, now: datetime, *, action: AuditAction,
                 previous: int | None, comment: str = "",
                 details: dict[str, Any] | None = None) -> None:
        """Becomes the active version (by sign-off, schedule or rollback)."""
        self.status = VersionStatus.ACTIVE
        self.activated_at = now
        self.closed_at = None
        self._record(action, actor, now, comment,
                     {"previous_version": previous, **(details or {})})

    def _require_status(self, *allowed: VersionStatus) -> None:
        if self.status not in allowed:
            raise Conflict("not_pending", f"the version is {self.status.value}, not "
                           f"{' or '.join(s.value for s in allowed)}")


@dataclass(eq=False)
class RulesetRecord:
    """A ruleset with the versions that matter for a transition: the active one, the open
    ones, and any other version a transition names (a rollback target, say).

    Its methods are the transitions that touch more than one version; every event they
    cause, on any version, lands in ``events`` in the order it happened.
    """

    id: int
    name: str
    title: str
    created_at: datetime
    loaded: list[Version] = field(default_factory=list)
    """The versions this record holds: the active and open ones when it was loaded, the
    ones its transitions created, and any other one a transition names."""
    history: list[VersionFact] = field(default_factory=list)
    """Every version's number, status, author and note, oldest first."""
    events: list[AuditEvent] = field(default_factory=list)
    paused: Pause | None = None
    """The pause in force, or None: while set, people decide instead of the rules."""

    # ------------------------------------------------------------------ facts

    @property
    def active(self) -> Version | None:
        """The active version, or None."""
        return next((v for v in self.loaded if v.status is VersionStatus.ACTIVE), None)

    @property
    def open(self) -> list[Version]:
        """The pending and approved versions, oldest first."""
        return sorted((v for v in self.loaded if v.is_open), key=lambda v: v.number)

    @property
    def active_number(self) -> int | None:
        """The active version's number, or None."""
        active = self.active
        return active.number if active is not None else None

    @property
    def active_ruleset(self) -> Ruleset | None:
        """The active version's ruleset: whose owners may propose and roll back."""
        active = self.active
        return active.ruleset if active is not None else None

    def find(self, number: int) -> Version | None:
        """A loaded version by number, or None."""
        return next((v for v in self.loaded if v.number == number), None)

    def adopt(self, version: Version) -> Version:
        """Takes a version loaded apart into the record (the record's copy wins)."""
        found = self.find(version.number)
        if found is not None:
            return found
        self.loaded.append(version)
        return version

    def next_number(self) -> int:
        """The number the next version gets."""
        numbers = [f.number for f in self.history] + [v.number for v in self.loaded]
        return max(numbers, default=0) + 1

    def open_alongside(self, version: Version) -> list[OpenAlongside]:
        """The other open versions on ``version``'s base, oldest first."""
        return [OpenAlongside(v.number, v.author, v.status.value, v.base_version)
                for v in self.open
                if v is not version and v.base_version == version.base_version]

    def _collect(self, version: Version, since: int) -> None:
        self.events.extend(version.events[since:])

    # ------------------------------------------------------------------ transitions

    def check_can_propose(self, actor: Actor) -> None:
        """403 unless the actor may propose a version of this ruleset now."""
        lifecycle.check_can_propose(actor, self.active_ruleset)

    def propose(self, actor: Actor, ruleset: Ruleset, content: str, now: datetime, *,
                note: str = "", effective_at: datetime | None = None,
                started_from: int | None = None) -> Version:
        """A new pending version, based on the active one; 403/409 as ``propose_version``
        documents. ``started_from`` (the version the author began with) must exist and be
        the newest that took or may take effect."""
        self.check_can_propose(actor)
        if started_from is not None:
            if all(f.number != started_from for f in self.history):
                raise RequestInvalid([Problem("base_version", f"ruleset {self.name} has no "
                                                              f"version {started_from}")])
            lifecycle.check_base_is_newest(started_from, self.history)
        digest = ruleset.content_hash
        if self.active is not None and self.active.content_hash == digest:
            raise Conflict("identical_to_active", f"the content is identical to the active "
                           f"version {self.active.number} of {self.name}")
        for other in self.open:
            if other.content_hash == digest:
                raise Conflict("identical_to_pending", f"version {other.number} of "
                               f"{self.name} has this content already and is "
                               f"{other.status}")
        version = Version(
            ruleset_id=self.id, ruleset_name=self.name, number=self.next_number(),
            status=VersionStatus.PENDING, content=content, definition=ruleset.definition,
            content_hash=digest, author=actor.name, ruleset=ruleset,
            authority=self.active.ruleset if self.active is not None else ruleset,
            created_at=now, note=note or "", base_version=self.active_number,
            effective_at=effective_at)
        version._record(AuditAction.PROPOSED, actor.name, now, note, {
            "base_version": version.base_version, "started_from": started_from,
            "content_hash": digest,
            "effective_at": effective_at.isoformat() if effective_at else None})
        self.loaded.append(version)
        self.history.append(version.fact())
        self._collect(version, 0)
        return version

    def sign_off(self, version: Version, actor: Actor, decision: SignoffDecision,
                 now: datetime, *, comment: str = "", role: str | None = None) -> None:
        """Records a sign-off; rejects, approves, marks stale or activates as it decides.

        A version whose last sign-off finds another version active is marked stale: the
        caller stores that and then raises ``stale_conflict``.
        """
        mark = len(version.events)
        outcome = version.sign_off(actor, decision, now, comment=comment, role=role)
        self._collect(version, mark)
        if outcome is VersionStatus.REJECTED:
            mark = len(version.events)
            version.reject(actor, now, role=version.signoffs[-1].role, comment=comment)
            self._collect(version, mark)
        elif outcome is VersionStatus.APPROVED:
            if lifecycle.is_stale(version.base_version, self.active_number):
                mark = len(version.events)
                version.mark_stale(actor.name, now, self.active_number)
                self._collect(version, mark)
                return
            mark = len(version.events)
            version.approve(actor, now)
            self._collect(version, mark)
            if lifecycle.is_due(version.effective_at, now):
                self.activate(version, actor.name, now, action=AuditAction.ACTIVATED)

    def withdraw(self, version: Version, actor: Actor, now: datetime, *,
                 comment: str = "") -> None:
        """The author takes a version back."""
        mark = len(version.events)
        version.withdraw(actor, now, comment=comment)
        self._collect(version, mark)

    def activate(self, version: Version, actor: str, now: datetime, *,
                 action: AuditAction, comment: str = "",
                 details: dict[str, Any] | None = None) -> int | None:
        """Supersedes the active version and activates ``version``; returns the superseded
        number. Open versions based on anything but the new active version can never
        activate now, so they become stale at once rather than surprising their signers."""
        previous = self.active
        if previous is not None and previous is not version:
            mark = len(previous.events)
            previous.supersede(actor, now, version.number)
            self._collect(previous, mark)
        previous_number = previous.number if previous is not None else None
        mark = len(version.events)
        version.activate(actor, now, action=action, previous=previous_number,
                         comment=comment, details=details)
        self._collect(version, mark)
        self.title = version.ruleset.title
        for other in self.open:
            if lifecycle.is_stale(other.base_version, version.number):
                mark = len(other.events)
                other.mark_stale(actor, now, version.number)
                self._collect(other, mark)
        return previous_number

    def activate_due(self, now: datetime, actor: str = lifecycle.SYSTEM_ACTOR) -> list[int]:
        """Activates the approved versions whose effective time has come, oldest first;
        a due one based on another version than the active one becomes stale."""
        activated: list[int] = []
        for version in self.open:
            if version.status is not VersionStatus.APPROVED:
                continue
            if not lifecycle.is_due(version.effective_at, now):
                continue
            if lifecycle.is_stale(version.base_version, self.active_number):
                mark = len(version.events)
                version.mark_stale(actor, now, self.active_number)
                self._collect(version, mark)
                continue
            self.activate(version, actor, now, action=AuditAction.ACTIVATED,
                          details={"scheduled_for": version.effective_at.isoformat()
                                   if version.effective_at else None})
            activated.append(version.number)
        return activated

    def check_can_roll_back(self, actor: Actor) -> None:
        """403 unless operations or business owner of the active version, or admin."""
        lifecycle.check_can_rollback(actor, self.active_ruleset)

    def roll_back_to(self, target: Version, actor: Actor, reason: str,
                     now: datetime) -> int | None:
        """Makes an earlier, once-active (superseded) version active again; returns the
        version it replaced. 403 unless operations or business owner of the active
        version (or admin); 409 ``already_active`` or ``not_rollback_target``."""
        self.check_can_roll_back(actor)
        if target.status is VersionStatus.ACTIVE:
            raise Conflict("already_active", f"version {target.number} of {self.name} is "
                                             f"already active")
        if target.status is not VersionStatus.SUPERSEDED:
            raise Conflict("not_rollback_target", f"version {target.number} of {self.name} "
                           f"was never active (it is {target.status}); only a superseded "
                           f"version can be rolled back to")
        return self.activate(target, actor.name, now, action=AuditAction.ROLLED_BACK,
                             comment=reason, details={"from_version": self.active_number,
                                                      "to_version": target.number})

    def pause(self, actor: Actor, reason: str, now: datetime) -> Pause:
        """Stops automatic decisions: 403 unless operations or business owner of the
        active version (or admin); 409 ``already_paused``. Audited as ``paused``."""
        pausing.check_can_pause(actor, self.active_ruleset, self.name)
        self.paused = pausing.start(self.paused, actor.name, pausing.pause_reason(reason), now,
                                  self.name)
        self.events.append(AuditEvent(self.active_number, AuditAction.PAUSED, actor.name,
                                      now, self.paused.reason))
        return self.paused

    def resume(self, actor: Actor, now: datetime) -> Pause:
        """The rules decide again: the same people as ``pause``; 409 ``not_paused``.
        Audited as ``resumed``, naming the pause it ends; returns that pause."""
        pausing.check_can_pause(actor, self.active_ruleset, self.name)
        ended = pausing.check_paused(self.paused, self.name)
        self.paused = None
        self.events.append(AuditEvent(
            self.active_number, AuditAction.RESUMED, actor.name, now, "",
            {"paused_by": ended.by, "paused_at": ended.at.isoformat(),
             "reason": ended.reason}))
        return ended


__all__ = ["AuditEvent", "LoadedVersion", "OpenAlongside", "RulesetEntry", "RulesetRecord",
           "Signoff", "Version", "stale_conflict"]
