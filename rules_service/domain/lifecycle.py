"""The version lifecycle's vocabulary and its rules: who may do what, as pure functions.

The statuses, audit actions and sign-off decisions, the acting ``Actor``, and the checks
(``check_can_propose``, ``choose_signoff_role``, ...) that the ``Version`` and
``RulesetRecord`` aggregates in ``domain.versions`` apply before every transition. Also
the time helpers every layer shares (``ensure_utc``, ``parse_duration``). Nothing here
touches a database.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from rules_service.domain.errors import Conflict, Forbidden
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset

MAX_VERSION_NUMBER = 2**31 - 1
"""The largest version number there can be: versions are numbered from 1 and stored in
32-bit integer columns, so a larger number (in a path, a query or a body) names nothing."""


class VersionStatus(StrEnum):
    """Where a version is in its lifecycle."""

    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    STALE = "stale"

    @property
    def is_open(self) -> bool:
        """True while the version may still become active by sign-off or schedule."""
        return self in (VersionStatus.PENDING, VersionStatus.APPROVED)


class AuditAction(StrEnum):
    """Every transition writes one of these."""

    PROPOSED = "proposed"
    SIGNED_OFF = "signed_off"
    REJECTED = "rejected"
    APPROVED = "approved"
    ACTIVATED = "activated"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"
    STALE = "stale"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    RESUMED = "resumed"


class SignoffDecision(StrEnum):
    """What a signer decided."""

    APPROVE = "approve"
    REJECT = "reject"


PROPOSER_ROLES: tuple[str, ...] = ("maintainer", "business_owner")
ROLLBACK_ROLES: tuple[str, ...] = ("operations_owner", "business_owner")
RESOLVER_ROLES: tuple[str, ...] = ("approver",)

SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Actor:
    """The acting principal as the lifecycle rules see it."""

    name: str
    is_admin: bool = False
    is_automation: bool = False


def _refuse_automation(actor: Actor, action: str) -> None:
    if actor.is_automation:
        raise Forbidden(f"{actor.name} is an automation principal: it may evaluate and read, "
                        f"not {action}")


def _holds_any(actor: Actor, authority: Ruleset, roles: tuple[str, ...]) -> bool:
    return any(actor.name in authority.holders_of(role) for role in roles)


def check_can_propose(actor: Actor, active: Ruleset | None) -> None:
    """Maintainer or business owner of the ACTIVE version, or an admin; a first version: admin."""
    _refuse_automation(actor, "propose versions")
    if actor.is_admin:
        return
    if active is None:
        raise Forbidden(f"only an admin may propose a version of a ruleset with no active "
                        f"version; {actor.name} is not an admin")
    if not _holds_any(actor, active, PROPOSER_ROLES):
        raise Forbidden(f"{actor.name} is neither maintainer nor business_owner "
                        f"(primary or backup) of ruleset {active.name}")


def check_can_rollback(actor: Actor, active: Ruleset | None) -> None:
    """Operations owner or business owner of the active version, or an admin."""
    _refuse_automation(actor, "roll back")
    if actor.is_admin:
        return
    if active is None or not _holds_any(actor, active, ROLLBACK_ROLES):
        name = active.name if active is not None else "this ruleset"
        raise Forbidden(f"{actor.name} is neither operations_owner nor business_owner "
                        f"(primary or backup) of {name}")


def resolving_roles(to_role: str) -> tuple[str, ...]:
    """The roles whose holders may resolve an escalation addressed to ``to_role``: that
    role, and the approver."""
    return (to_role, *(r for r in RESOLVER_ROLES if r != to_role))


def resolvers(deciding: Ruleset, to_role: str) -> tuple[str, ...]:
    """The people (primary and backup) who may resolve an escalation addressed to
    ``to_role`` of the version ``deciding``; admins may too."""
    names: list[str] = []
    for role in resolving_roles(to_role):
        names.extend(n for n in deciding.holders_of(role) if n not in names)
    return tuple(names)


def may_resolve_escalation(actor: Actor, deciding: Ruleset, to_role: str,
                           reached: Collection[str] = ()) -> bool:
    """True when ``actor`` may resolve an escalation addressed to ``to_role`` of the
    version ``deciding`` (``reached``: the people on the escalation path the overdue walk
    has reached): the rule ``check_can_resolve_escalation`` applies."""
    if actor.is_automation:
        return False
    return (actor.is_admin or actor.name in reached
            or _holds_any(actor, deciding, resolving_roles(to_role)))


def check_can_resolve_escalation(actor: Actor, deciding: Ruleset,
                                 to_role: str = "approver",
                                 reached: Collection[str] = ()) -> None:
    """Whoever holds ``to_role`` (the rule's ``escalate_to``), primary or backup, of the
    version that decided; also its approvers, admins, and each person on the runbook's
    escalation path the overdue walk has ``reached`` (they were paged to act on it)."""
    _refuse_automation(actor, "resolve escalations")
    if not may_resolve_escalation(actor, deciding, to_role, reached):
        roles = resolving_roles(to_role)
        raise Forbidden(f"{actor.name} holds neither {' nor '.join(roles)} (primary or "
                        f"backup) of the {deciding.name} version that decided; the "
                        f"escalation is addressed to {to_role}")


def owner_problems(ruleset: Ruleset, principals: Collection[str]) -> list[Problem]:
    """Every owner the ruleset names who is not one of ``principals``, each at its place.

    An owner who does not exist can never sign off, roll back or resolve, so a version
    naming one could never be approved by its own owners.
    """
    problems = []
    for role, holders in ruleset.owners.items():
        for slot in ("primary", "backup"):
            name = getattr(holders, slot)
            if name and name not in principals:
                problems.append(Problem(
                    f"owners.{role}.{slot}",
                    f"{name} is not a principal of this service; create it "
                    f"('rules-service principals add {name}') or correct the name"))
    return problems


# Versions that never took effect and never will: a working copy need not include them.
_DEAD_ENDS = (VersionStatus.REJECTED, VersionStatus.WITHDRAWN, VersionStatus.STALE)


@dataclass(frozen=True)
class VersionFact:
    """What the staleness check needs to know of a stored version."""

    number: int
    status: VersionStatus
    author: str
    note: str


def check_base_is_newest(base_version: int, versions: list[VersionFact]) -> None:
    """409 ``stale_base`` naming each version newer than the author's starting point.

    Rejected, withdrawn and stale versions never took effect, so they do not count.
    """
    newer = [v for v in versions if v.number > base_version and v.status not in _DEAD_ENDS]
    if newer:
        listed = ", ".join(f"version {v.number} ({v.status.value}, by {v.author})"
                           for v in newer)
        raise Conflict("stale_base", f"this change starts from version {base_version}, but "
                       f"newer versions exist: {listed}; start again from version "
                       f"{newer[-1].number} so their changes are kept",
                       [{"version": v.number, "status": v.status.value, "author": v.author,
                         "note": v.note} for v in newer])


def check_can_withdraw(actor: Actor, author: str, status: VersionStatus) -> None:
    """Only the author withdraws, and only a version that is not active yet."""
    if actor.name != author:
        raise Forbidden(f"only the author ({author}) may withdraw this version")
    if not status.is_open:
        raise Conflict("not_pending", f"the version is {status.value}; only a pending or "
                       f"approved (scheduled) version can be withdrawn")


def check_signable(status: VersionStatus) -> None:
    """A version takes sign-offs only while pending."""
    if status is VersionStatus.STALE:
        raise Conflict("stale", "the active version has changed since this version was "
                       "proposed; propose it again on top of the active version")
    if status is not VersionStatus.PENDING:
        raise Conflict("not_pending", f"the version is {status.value}, not pending")


def is_stale(base_version: int | None, active_version: int | None) -> bool:
    """True when activating would overwrite a change the version was not based on."""
    return base_version != active_version


def choose_signoff_role(actor: Actor, author: str, authority: Ruleset,
                        filled: Mapping[str, str], role: str | None = None) -> str:
    """The sign-off role this actor fills now; refuses the author, non-holders, and repeats.

    ``filled`` maps each role signed so far to its signer. One person fills one role: a
    person holding two sign-off roles fills one of them, and someone else the other.
    """
    _refuse_automation(actor, "sign off versions")
    if actor.name == author:
        raise Forbidden(f"{actor.name} is the author of this version and cannot sign it off")
    required = authority.signoff
    held = [r for r in required if actor.name in authority.holders_of(r)]
    if not held:
        raise Forbidden(f"{actor.name} holds none of the sign-off roles "
                        f"({', '.join(required)}) of ruleset {authority.name}")
    already = [r for r, who in filled.items() if who == actor.name]
    if already:
        raise Conflict("already_signed_off", f"{actor.name} has already signed off this "
                       f"version as {already[0]}; one person fills one role")
    if role is not None:
        if role not in required:
            raise Forbidden(f"{role} is not a sign-off role of ruleset {authority.name} "
                            f"(those are {', '.join(required)})")
        if role not in held:
            raise Forbidden(f"{actor.name} does not hold the {role} role of ruleset "
                            f"{authority.name}")
        if role in filled:
            raise Conflict("role_already_signed_off",
                           f"the {role} role was already signed off by {filled[role]}")
        return role
    still_open = signoff_roles_open_to(actor, author, authority, filled)
    if still_open:
        return still_open[0]
    raise Conflict("role_already_signed_off",
                   f"every sign-off role {actor.name} holds ({', '.join(held)}) is already "
                   f"signed off")


def signoff_roles_open_to(actor: Actor, author: str, authority: Ruleset,
                          filled: Mapping[str, str]) -> list[str]:
    """The still-missing required roles ``actor`` may sign now, in the order ``signoff``
    lists them: none for the author, an automation, or someone who has signed already
    (one person fills one role)."""
    if actor.is_automation or actor.name == author or actor.name in filled.values():
        return []
    return [r for r in authority.signoff
            if r not in filled and actor.name in authority.holders_of(r)]


def status_after_signoffs(required: tuple[str, ...],
                          decisions: Mapping[str, SignoffDecision]) -> VersionStatus:
    """Any required role rejecting: rejected; every one approving: approved; else pending."""
    if any(decisions.get(r) is SignoffDecision.REJECT for r in required):
        return VersionStatus.REJECTED
    if all(decisions.get(r) is SignoffDecision.APPROVE for r in required):
        return VersionStatus.APPROVED
    return VersionStatus.PENDING


def is_due(effective_at: datetime | None, now: datetime) -> bool:
    """An approved version activates once its effective time has come (none: at once)."""
    return effective_at is None or ensure_utc(effective_at) <= ensure_utc(now)


def ensure_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already.

    ValueError when the moment has no UTC equivalent (``0001-01-01T00:00+23:59`` falls
    before year 1), so callers that read times from people name the field instead of
    failing with an OverflowError.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} lies outside the years 1-9999 "
                         f"in UTC") from None


# The one form of a duration, wherever one is written (a runbook's response-time target,
# a dashboard window): whole numbers, units in the order d, h, m, s, nothing between.
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (86400, 3600, 60, 1)
DURATION_FORM = "a duration like 30m, 4h, 2d or 1h30m"


def parse_duration(text: str) -> timedelta:
    """``4h``, ``30m``, ``1d``, ``1h30m``, ``90s`` as a timedelta; ValueError otherwise."""
    found = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if found is None or not any(found.groups()):
        raise ValueError(f"not {DURATION_FORM}: {text!r}")
    seconds = sum(int(n) * unit for n, unit
                  in zip(found.groups(), _UNIT_SECONDS, strict=True) if n)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration this service can "
                         f"hold") from None


def format_duration(delta: timedelta) -> str:
    """A whole-second duration in the one form parse_duration reads (``1h30m``)."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        raise ValueError("a duration is longer than zero")
    parts = []
    for unit, name in zip(_UNIT_SECONDS, "dhms", strict=True):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts)
