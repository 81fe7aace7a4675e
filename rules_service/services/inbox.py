"""What waits for a person: the roles they hold, the sign-offs they may give, the
escalations they may resolve, their own open proposals, the paused rulesets they own
(operations or business owner) and the reviews that fell due (business owner).

Who may do what is decided by the domain's rules (``Version.signoff_roles_open_to``,
``lifecycle.may_resolve_escalation``), the same ones sign-off and resolve apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rules_service.domain import lifecycle, review_rhythm
from rules_service.domain.escalations import Escalation
from rules_service.domain.lifecycle import Actor
from rules_service.domain.pause import PAUSE_ROLES, Pause
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.versions import Version
from rules_service.services.governance import resolve_actor
from rules_service.services.unit_of_work import AbstractUnitOfWork
from rules_service.services.views import iso

OPEN_ESCALATIONS_READ = 100_000
"""Most open escalations looked at for one inbox: far more than a queue ever holds."""


class EscalationFinder(Protocol):
    """The escalations an inbox reads."""

    def find(self, *, status: str | None = None, ruleset_id: int | None = None,
             overdue_at: datetime | None = None, limit: int = 1000) -> list[Escalation]:
        """Escalations oldest first."""


class InboxUnitOfWork(AbstractUnitOfWork, Protocol):
    """The governance unit of work, with the escalations."""

    @property
    def escalations(self) -> EscalationFinder: ...


@dataclass(frozen=True)
class RoleHeld:
    """One role a person holds in one ruleset."""

    ruleset: str
    role: str
    as_: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ruleset": self.ruleset, "role": self.role, "as": self.as_}


@dataclass(frozen=True)
class Me:
    """A principal and the roles it holds."""

    name: str
    admin: bool
    automation: bool
    roles: tuple[RoleHeld, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "admin": self.admin, "automation": self.automation,
                "roles": [r.to_dict() for r in self.roles]}


@dataclass(frozen=True)
class SignoffWaiting:
    """A pending version the person may sign as one of ``roles``."""

    ruleset: str
    version: int
    author: str
    note: str
    proposed_at: datetime
    roles: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ruleset": self.ruleset, "version": self.version, "author": self.author,
                "note": self.note, "proposed_at": iso(self.proposed_at),
                "roles": list(self.roles)}


@dataclass(frozen=True)
class EscalationWaiting:
    """An open escalation the person may resolve."""

    id: str
    ruleset: str
    version: int
    decision_id: str
    to_role: str
    due_at: datetime | None
    overdue: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "ruleset": self.ruleset, "version": self.version,
                "decision_id": self.decision_id, "to_role": self.to_role,
                "due_at": iso(self.due_at), "overdue": self.overdue}


@dataclass(frozen=True)
class ProposalWaiting:
    """One of the person's own versions that is not active yet."""

    ruleset: str
    version: int
    status: str
    note: str
    proposed_at: datetime
    effective_at: datetime | None
    missing_signoffs: tuple[str, ...]
    holders: dict[str, tuple[str, ...]]
    """Who may give each missing sign-off (never the author)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ruleset": self.ruleset, "version": self.version, "status": self.status,
                "note": self.note, "proposed_at": iso(self.proposed_at),
                "effective_at": iso(self.effective_at),
                "missing_signoffs": list(self.missing_signoffs)}


@dataclass(frozen=True)
class PausedWaiting:
    """A ruleset the person owns that is paused: people decide until someone resumes it."""

    ruleset: str
    pause: Pause

    @property
    def sentence(self) -> str:
        """``paused by ops since 2026-01-05 09:00 UTC: why``."""
        return self.pause.sentence()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ruleset": self.ruleset, "by": self.pause.by, "at": iso(self.pause.at),
                "reason": self.pause.reason, "message": self.sentence}


@dataclass(frozen=True)
class ReviewWaiting:
    """An active version whose review time passed, for its business owner."""

    ruleset: str
    version: int
    activated_at: datetime | None
    due_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"ruleset": self.ruleset, "version": self.version,
                "activated_at": iso(self.activated_at), "due_at": iso(self.due_at)}


@dataclass(frozen=True)
class Inbox:
    """Everything waiting for one person."""

    signoffs: tuple[SignoffWaiting, ...]
    escalations: tuple[EscalationWaiting, ...]
    proposals: tuple[ProposalWaiting, ...]
    paused: tuple[PausedWaiting, ...] = ()
    reviews: tuple[ReviewWaiting, ...] = ()

    @property
    def count(self) -> int:
        """What waits for the person to act: sign-offs, escalations, paused rulesets to
        resume and reviews due."""
        return (len(self.signoffs) + len(self.escalations) + len(self.paused)
                + len(self.reviews))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"signoffs": [s.to_dict() for s in self.signoffs],
                "escalations": [e.to_dict() for e in self.escalations],
                "proposals": [p.to_dict() for p in self.proposals],
                "paused": [p.to_dict() for p in self.paused],
                "reviews": [r.to_dict() for r in self.reviews]}


def _governing(uow: AbstractUnitOfWork) -> list[tuple[str, Ruleset]]:
    """Each ruleset's name and the version whose owners govern it: the active one, else
    its oldest open (first) version."""
    active = uow.versions.active_by_ruleset()
    pending = uow.versions.open_by_ruleset()
    out = []
    for entry in uow.rulesets.list_all():
        version = active.get(entry.id) or min(pending.get(entry.id, []),
                                              key=lambda v: v.number, default=None)
        if version is not None:
            out.append((entry.name, version.ruleset))
    return out


def me(uow: AbstractUnitOfWork, name: str) -> Me:
    """The principal ``name`` and every role it holds, primary or backup."""
    with uow.readonly():
        who = resolve_actor(uow, name)
        roles = []
        for ruleset_name, ruleset in _governing(uow):
            for role, holders in ruleset.owners.items():
                for slot in ("primary", "backup"):
                    if getattr(holders, slot) == who.name:
                        roles.append(RoleHeld(ruleset_name, role, slot))
        return Me(who.name, who.is_admin, who.is_automation, tuple(roles))


def inbox(uow: InboxUnitOfWork, name: str) -> Inbox:
    """What waits for ``name``: sign-offs it may give, escalations it may resolve (soonest
    due first), and its own pending or approved versions."""
    with uow.readonly():
        who = resolve_actor(uow, name)
        open_versions = [v for group in uow.versions.open_by_ruleset().values()
                         for v in group]
        open_versions.sort(key=lambda v: (v.ruleset_name, v.number))
        escalations = _escalations_for(uow, who)
        paused, reviews = _rhythm_for(uow, who)
    signoffs = tuple(
        SignoffWaiting(v.ruleset_name, v.number, v.author, v.note, v.created_at,
                       tuple(roles))
        for v in open_versions if (roles := v.signoff_roles_open_to(who)))
    proposals = tuple(_proposal(v) for v in open_versions if v.author == who.name)
    return Inbox(signoffs, escalations, proposals, paused, reviews)


def _rhythm_for(uow: AbstractUnitOfWork, who: Actor
                ) -> tuple[tuple[PausedWaiting, ...], tuple[ReviewWaiting, ...]]:
    """The paused rulesets ``who`` owns (operations or business owner, primary or backup)
    and the due reviews of the rulesets whose business owner they are."""
    now = uow.now()
    active = uow.versions.active_by_ruleset()
    paused: list[PausedWaiting] = []
    reviews: list[ReviewWaiting] = []
    for entry in uow.rulesets.list_all():
        version = active.get(entry.id)
        if version is None:
            continue
        ruleset = version.ruleset
        if entry.paused is not None and any(who.name in ruleset.holders_of(role)
                                            for role in PAUSE_ROLES):
            paused.append(PausedWaiting(entry.name, entry.paused))
        due = review_rhythm.due_at(ruleset, version.activated_at)
        if due is not None and due <= now and who.name in ruleset.holders_of("business_owner"):
            reviews.append(ReviewWaiting(entry.name, version.number, version.activated_at, due))
    return tuple(paused), tuple(reviews)


def _proposal(version: Version) -> ProposalWaiting:
    missing = version.missing_signoffs if version.status.value == "pending" else ()
    return ProposalWaiting(
        version.ruleset_name, version.number, version.status.value, version.note,
        version.created_at, version.effective_at, missing,
        {role: tuple(n for n in version.authority.holders_of(role) if n != version.author)
         for role in missing})


def _escalations_for(uow: InboxUnitOfWork, who: Actor) -> tuple[EscalationWaiting, ...]:
    if who.is_automation:
        return ()
    now = uow.now()
    found = uow.escalations.find(status="open", limit=OPEN_ESCALATIONS_READ)
    deciding = _deciding_versions(uow, found)
    mine = [e for e in found if e.may_be_resolved_by(who, deciding[(e.ruleset_id, e.version)])]
    mine.sort(key=lambda e: (e.due_at is None, e.due_at or now, e.created_at, e.id))
    return tuple(EscalationWaiting(e.id, e.ruleset, e.version, e.decision_id, e.to_role,
                                   e.due_at, e.is_overdue(now)) for e in mine)


def _deciding_versions(uow: AbstractUnitOfWork, found: Sequence[Escalation]
                       ) -> dict[tuple[int, int], Ruleset]:
    """The ruleset of each version that decided one of ``found``, each read once."""
    out: dict[tuple[int, int], Ruleset] = {}
    for e in found:
        key = (e.ruleset_id, e.version)
        if key not in out:
            version = uow.versions.get(*key)
            assert version is not None  # foreign keys keep the version
            out[key] = version.ruleset
    return out


@dataclass(frozen=True)
class Resolvable:
    """Whether a person may resolve one escalation, and who may."""

    mine: bool
    resolvers: tuple[str, ...]
    """The holders (primary and backup) of the roles that may; admins may too."""


class EscalationRef(Protocol):
    """What names an escalation's deciding version and its addressee."""

    @property
    def id(self) -> str: ...

    @property
    def ruleset(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def to_role(self) -> str: ...


def who_may_resolve(uow: AbstractUnitOfWork, name: str,
                    escalations: Sequence[EscalationRef]) -> dict[str, Resolvable]:
    """For each escalation (by id): may ``name`` resolve it, and who may."""
    with uow.readonly():
        who = resolve_actor(uow, name)
        ids = {name: entry.id for name in {e.ruleset for e in escalations}
               if (entry := uow.rulesets.get(name)) is not None}
        deciding: dict[tuple[str, int], Ruleset] = {}
        for e in escalations:
            if (e.ruleset, e.version) not in deciding:
                version = uow.versions.get(ids[e.ruleset], e.version)
                assert version is not None  # foreign keys keep the version
                deciding[(e.ruleset, e.version)] = version.ruleset
    return {e.id: Resolvable(
        lifecycle.may_resolve_escalation(who, deciding[(e.ruleset, e.version)], e.to_role),
        lifecycle.resolvers(deciding[(e.ruleset, e.version)], e.to_role))
        for e in escalations}
