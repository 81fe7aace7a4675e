"""What an approver's review page needs beyond the version itself: may this person sign it
now, and if not, why; and the version's embedded tests' results.

Both ask the domain, never decide themselves: eligibility asks the same ``Version`` method
``governance.sign_off`` relies on, so the page and the action can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.domain.errors import DomainError
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.testing import TestResult, run_tests
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
