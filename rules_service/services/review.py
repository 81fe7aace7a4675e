"""What an approver's review page needs beyond the version itself: may this person sign it
now, and if not, why; the version's embedded tests' results; and the other versions it
collides with (open on the same base, or the one whose going live made it stale).

Both ask the domain, never decide themselves: eligibility asks the same ``Version`` method
``governance.sign_off`` relies on, so the page and the action can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.domain.errors import DomainError
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.lifecycle import AuditAction, VersionStatus
from rules_service.domain.testing import TestResult, run_tests
from rules_service.domain.versions import OpenAlongside
from rules_service.language.wording import role_words
from rules_service.services.governance import (
    activate_due,
    resolve_actor,
    ruleset_named,
    version_named,
)
from rules_service.services.unit_of_work import AbstractUnitOfWork


@dataclass(frozen=True)
class Eligibility:
    """Whether ``actor`` may sign the version now: the role they would fill, or why not."""

    role: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        """True when a sign-off by this person would be accepted now."""
        return self.role is not None


def signoff_eligibility(uow: AbstractUnitOfWork, name: str, number: int, actor: str) -> Eligibility:
    """The role ``actor`` would fill signing this version now, or the refusal's message."""
    activate_due(uow)
    with uow.readonly():
        who = resolve_actor(uow, actor)
        version = version_named(uow, ruleset_named(uow, name), number)
        try:
            role = version.signoff_role(who)
        except DomainError as exc:
            return Eligibility(None, exc.message)
        return Eligibility(role, f"you would sign as the {role_words(role)}")


def version_tests(uow: AbstractUnitOfWork, evaluator: Evaluator, name: str,
                  number: int) -> list[TestResult]:
    """The version's embedded tests, run now on the real engine."""
    activate_due(uow)
    with uow.readonly():
        ruleset = version_named(uow, ruleset_named(uow, name), number).ruleset
    return run_tests(ruleset, evaluator)


@dataclass(frozen=True)
class Collisions:
    """The versions a version collides with: while it is open, the other open versions on
    its base; once stale, the version whose going live made it so."""

    stale_by: int | None
    alongside: tuple[OpenAlongside, ...]


def collisions(uow: AbstractUnitOfWork, name: str, number: int) -> Collisions:
    """What the version page says of the version's neighbours on its base."""
    activate_due(uow)
    with uow.readonly():
        rs = ruleset_named(uow, name)
        version = version_named(uow, rs, number)
        stale_by: int | None = None
        if version.status is VersionStatus.STALE:
            for event in uow.audit.for_ruleset(rs.id, number):
                if event.action is AuditAction.STALE:
                    found = (event.details or {}).get("active_version")
                    stale_by = found if isinstance(found, int) else None
        alongside: tuple[OpenAlongside, ...] = ()
        if version.is_open:
            alongside = tuple(
                OpenAlongside(v.number, v.author, v.status.value, v.base_version)
                for v in uow.versions.open_versions(rs.id)
                if v.number != number and v.base_version == version.base_version)
        return Collisions(stale_by, alongside)
