"""Domain errors: what went wrong in terms a user of the service understands."""

from __future__ import annotations

from collections.abc import Iterable

from rules_service.domain.problems import Problem


class DomainError(Exception):
    """Base of every error the domain raises on purpose (never a bug)."""

    code = "domain_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _ordered(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    # File order first (problems with a line), then the rest in the order they were found.
    items = list(problems)
    return tuple(sorted(items, key=lambda p: (p.line is None, p.line or 0, p.column or 0)))


class RulesetInvalid(DomainError):
    """A ruleset file or definition has problems; ``problems`` lists every one of them."""

    code = "ruleset_invalid"

    def __init__(self, problems: Iterable[Problem]):
        self.problems = _ordered(problems)
        count = len(self.problems)
        super().__init__(f"the ruleset has {count} problem{'s' if count != 1 else ''}")


class InputInvalid(DomainError):
    """An evaluation input breaks the ruleset's input schema; every bad field is named."""

    code = "input_invalid"

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(f"the input has {count} problem{'s' if count != 1 else ''}")


# --- Governance errors (versions, principals, decisions). The HTTP status each one is
# answered with is the edge's business: api/errors.py maps error classes to statuses.


class NotFound(DomainError):
    """The named ruleset, version, decision or escalation does not exist."""

    code = "not_found"


class Unauthenticated(DomainError):
    """No valid principal: unknown, revoked, or no token."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """Authenticated but not allowed; the message is the reason."""

    code = "forbidden"

    @property
    def reason(self) -> str:
        """Why the action is refused."""
        return self.message


class Conflict(DomainError):
    """The request clashes with the current state; ``code`` says how (e.g. ``stale``)."""


    def __init__(self, code: str, message: str, details: list[object] | None = None):
        super().__init__(message)
        self.code = code
        self.details: list[object] = list(details or [])


class RequestInvalid(DomainError):
    """A request argument is unusable (not the ruleset content); every problem is named."""

    code = "invalid_request"

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid request")
