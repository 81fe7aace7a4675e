"""Rollback as the pages offer it: who may roll back, to which versions, what a rollback
would change, which versions a rollback left, and when the active version changed.

Every answer asks the domain (``lifecycle.check_can_rollback``, the version statuses) or
reads the audit trail, so the page offers exactly what ``governance.rollback`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import Conflict, DomainError
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.lifecycle import AuditAction, VersionStatus, check_can_rollback
from rules_service.services import diffs
from rules_service.services.governance import (
    activate_due,
    resolve_actor,
    ruleset_named,
    version_named,
)
from rules_service.services.unit_of_work import AbstractUnitOfWork
from rules_service.services.views import AuditEventView

_ACTIVATIONS = (AuditAction.ACTIVATED.value, AuditAction.ROLLED_BACK.value)


@dataclass(frozen=True)
class RollbackOffer:
    """What a person may roll back to: nothing unless ``allowed``; ``targets`` newest
    first, the version the active one replaced (``suggested``) among them."""

    active_version: int | None
    allowed: bool
    targets: tuple[int, ...]
    suggested: int | None


@dataclass(frozen=True)
class RollbackPreview:
    """The change a rollback makes: from the active version to the target, in sentences."""

    ruleset: str
    from_version: int
    to_version: int
    summary: tuple[str, ...]
    target_author: str
    target_note: str


@dataclass(frozen=True)
class VersionChange:
    """A moment the active version of a ruleset changed (an activation or a rollback)."""

    ruleset: str
    version: int
    previous: int | None
    action: str
    actor: str
    at: datetime

    @property
    def rolled_back(self) -> bool:
        """True when a rollback made the change."""
        return self.action == AuditAction.ROLLED_BACK.value


def offer(uow: AbstractUnitOfWork, name: str, actor: str) -> RollbackOffer:
    """The versions ``actor`` may roll ``name`` back to; none when they may not roll back
    (operations or business owner, primary or backup, of the active version; admins)."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        rows = list(uow.versions.for_ruleset(rs.id))
        active = next((v for v in rows if v.status is VersionStatus.ACTIVE), None)
        try:
            check_can_rollback(resolve_actor(uow, actor),
                               active.ruleset if active is not None else None)
        except DomainError:
            allowed = False
        else:
            allowed = active is not None
        superseded = sorted((v for v in rows if v.status is VersionStatus.SUPERSEDED),
                            key=lambda v: (v.closed_at or rs.created_at, v.number),
                            reverse=True)
    targets = tuple(v.number for v in superseded) if allowed else ()
    return RollbackOffer(active.number if active is not None else None, allowed, targets,
                         targets[0] if targets else None)


def preview(uow: UnitOfWork, evaluator: Evaluator, name: str, to_version: int,
            actor: str) -> RollbackPreview:
    """What rolling ``name`` back to ``to_version`` would change, for ``actor`` to confirm.

    403 when ``actor`` may not roll back; 404 unknown version; 409 ``already_active`` or
    ``not_rollback_target``, as the rollback itself would answer.
    """
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        active = uow.versions.active(rs.id)
        check_can_rollback(resolve_actor(uow, actor),
                           active.ruleset if active is not None else None)
        target = version_named(uow, rs, to_version)
        if target.status is VersionStatus.ACTIVE:
            raise Conflict("already_active", f"version {to_version} of {name} is already "
                                             f"active")
        if target.status is not VersionStatus.SUPERSEDED or active is None:
            raise Conflict("not_rollback_target", f"version {to_version} of {name} was never "
                           f"active (it is {target.status}); only a superseded version can "
                           f"be rolled back to")
        from_version, author, note = active.number, target.author, target.note
    diff = diffs.diff_versions(uow, evaluator, name, from_version=from_version,
                               to_version=to_version)
    return RollbackPreview(name, from_version, to_version, tuple(diff.diff.summary),
                           author, note)


def version_changes(events: Iterable[AuditEventView]) -> list[VersionChange]:
    """The activations and rollbacks among ``events``, in the order they happened."""
    out = [VersionChange(e.ruleset, e.version, e.details.get("previous_version"), e.action,
                         e.actor, e.at)
           for e in events if e.action in _ACTIVATIONS and e.version is not None]
    return sorted(out, key=lambda c: c.at)


def rolled_back(events: Iterable[AuditEventView]) -> set[int]:
    """The versions a rollback left: the last change that replaced each was a rollback."""
    last: dict[int, VersionChange] = {}
    for change in version_changes(events):
        if change.previous is not None:
            last[change.previous] = change
    return {number for number, change in last.items() if change.rolled_back}


def changes_between(uow: AbstractUnitOfWork, ruleset: str | None, since: datetime,
                    until: datetime) -> list[VersionChange]:
    """When the active version changed in [since, until], of ``ruleset`` or of every
    ruleset: a ruleset's audit trail is small, so it is read whole."""
    activate_due(uow)
    with uow.readonly():
        entries = ([ruleset_named(uow, ruleset)] if ruleset is not None
                   else list(uow.rulesets.list_all()))
        events = [AuditEventView(e.id or 0, rs.name, e.version, e.action.value, e.actor,
                                 e.comment, dict(e.details or {}), e.at)
                  for rs in entries for e in uow.audit.for_ruleset(rs.id)
                  if e.action.value in _ACTIVATIONS]
    return [c for c in version_changes(events) if since <= c.at <= until]
