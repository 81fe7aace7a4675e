"""What an approver's review page needs beyond the version itself: may this person sign it
now, and if not, why; and the version's embedded tests' results.

Both ask the domain, never decide themselves: eligibility runs the same lifecycle checks
``governance.sign_off`` runs, so the page and the action can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import lifecycle
from rules_service.domain.errors import DomainError
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.lifecycle import VersionStatus
from rules_service.domain.testing import TestResult, run_tests
from rules_service.services.governance import (
    _authority_row,
    _ruleset_row,
    _version_row,
    activate_due,
    resolve_actor,
    ruleset_of,
)


@dataclass(frozen=True)
class Eligibility:
    """Whether ``actor`` may sign the version now: the role they would fill, or why not."""

    role: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        """True when a sign-off by this person would be accepted now."""
        return self.role is not None


def signoff_eligibility(uow: UnitOfWork, name: str, number: int, actor: str) -> Eligibility:
    """The role ``actor`` would fill signing this version now, or the refusal's message."""
    activate_due(uow)
    with uow.readonly():
        who = resolve_actor(uow, actor)
        rs = _ruleset_row(uow, name)
        version = _version_row(uow, rs, number)
        try:
            lifecycle.check_signable(VersionStatus(version.status))
            authority = ruleset_of(_authority_row(uow, version))
            filled = {s.role: s.principal for s in version.signoffs}
            role = lifecycle.choose_signoff_role(who, version.author, authority, filled)
        except DomainError as exc:
            return Eligibility(None, exc.message)
        return Eligibility(role, f"you would sign as {role}")


def version_tests(uow: UnitOfWork, evaluator: Evaluator, name: str,
                  number: int) -> list[TestResult]:
    """The version's embedded tests, run now on the real engine."""
    activate_due(uow)
    with uow.readonly():
        rs = _ruleset_row(uow, name)
        ruleset = ruleset_of(_version_row(uow, rs, number))
    return run_tests(ruleset, evaluator)
