"""Runs a ruleset's embedded ``tests:`` against an evaluator."""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.domain.errors import InputInvalid
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.inputs import validate_input
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset, RuleTest


@dataclass(frozen=True)
class TestResult:
    """The result of one embedded test."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    failures: tuple[str, ...] = ()
    outcome: str | None = None
    fired: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"name": self.name, "passed": self.passed, "failures": list(self.failures),
                "outcome": self.outcome, "fired": list(self.fired)}


def _check(test: RuleTest, outcome: str, fired: tuple[str, ...],
           deciding: tuple[str, ...]) -> list[str]:
    failures = []
    if test.expect_outcome is not None and outcome != test.expect_outcome.value:
        failures.append(f"expected outcome {test.expect_outcome.value}, got {outcome}")
    if test.expect_fired is not None and set(fired) != set(test.expect_fired):
        failures.append(f"expected fired {sorted(test.expect_fired)}, got {sorted(fired)}")
    if test.expect_deciding is not None and set(deciding) != set(test.expect_deciding):
        failures.append(
            f"expected deciding {sorted(test.expect_deciding)}, got {sorted(deciding)}")
    return failures


def run_tests(ruleset: Ruleset, evaluator: Evaluator) -> list[TestResult]:
    """Every embedded test's result, evaluated in one batch."""
    results: list[TestResult | None] = [None] * len(ruleset.tests)
    runnable: list[tuple[int, dict[str, object]]] = []
    for i, test in enumerate(ruleset.tests):
        try:
            runnable.append((i, validate_input(ruleset, test.input)))
        except InputInvalid as exc:
            results[i] = TestResult(test.name, False,
                                    tuple(f"input: {p}" for p in exc.problems))
    evaluations = evaluator.evaluate_many(ruleset, [data for _, data in runnable])
    for (i, _), ev in zip(runnable, evaluations, strict=True):
        test = ruleset.tests[i]
        failures = _check(test, ev.outcome.value, ev.fired_ids, ev.deciding_rules)
        if ev.fallback:
            failures.insert(0, f"the engine could not decide: {ev.fallback_reason}")
        results[i] = TestResult(test.name, not failures, tuple(failures), ev.outcome.value,
                                ev.fired_ids)
    return [r for r in results if r is not None]


def failing_tests_as_problems(results: list[TestResult]) -> list[Problem]:
    """Failed tests as problems that block a proposed version."""
    return [Problem(f"tests[{i}]", f"test '{r.name}' failed: " + "; ".join(r.failures))
            for i, r in enumerate(results) if not r.passed]
