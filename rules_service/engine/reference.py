"""The plain-Python evaluator: the benchmark baseline and the oracle for engine tests.

It runs in the calling process with no isolation (a pathological ``matches`` pattern can
block it), so production uses EnginePool; tests of other modules use this one to avoid
child processes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rules_service.domain.decision import Evaluation, decide, fallback
from rules_service.domain.ruleset import Ruleset
from rules_service.language.evaluator import evaluate as evaluate_condition


class ReferenceEvaluator:
    """Evaluates every rule's condition with language.evaluator; same interface as EnginePool."""

    def fired(self, ruleset: Ruleset, data: dict[str, Any]) -> list[str]:
        """Ids of the rules whose condition holds, in ruleset order."""
        return [rule.id for rule in ruleset.rules
                if evaluate_condition(rule.condition, data, ruleset.thresholds)]

    def evaluate(self, ruleset: Ruleset, data: dict[str, Any]) -> Evaluation:
        """The decision for one input (the fallback outcome if evaluation raises)."""
        started = time.perf_counter()
        try:
            fired = self.fired(ruleset, data)
        except Exception as exc:  # an evaluator never raises to its caller
            ms = (time.perf_counter() - started) * 1000
            return fallback(ruleset, f"evaluation failed: {type(exc).__name__}: {exc}", data, ms)
        return decide(ruleset, fired, data, (time.perf_counter() - started) * 1000)

    def evaluate_many(self, ruleset: Ruleset, inputs: Sequence[dict[str, Any]]
                      ) -> list[Evaluation]:
        """Decisions for many inputs, in order."""
        return [self.evaluate(ruleset, data) for data in inputs]
