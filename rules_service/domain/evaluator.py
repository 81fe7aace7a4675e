"""What the service layer needs from an evaluator: decisions for one or many inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rules_service.domain.decision import Evaluation
from rules_service.domain.ruleset import Ruleset


class Evaluator(Protocol):
    """Decides inputs against a ruleset; never raises for an engine failure (fallback instead)."""

    def evaluate(self, ruleset: Ruleset, data: dict[str, Any]) -> Evaluation:
        """The decision for one input (defaults applied, absent optional fields missing)."""
        ...

    def evaluate_many(self, ruleset: Ruleset, inputs: Sequence[dict[str, Any]]
                      ) -> list[Evaluation]:
        """Decisions for many inputs, in order."""
        ...
