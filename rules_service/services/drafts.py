"""Drafts of a change, before anyone proposes them: check, try, and preview.

The business owner's editor calls these as they type. Nothing is stored. Each uses the
same code the proposal itself runs (``governance`` parses and names the ruleset, the
embedded tests run on the real engine, ``diffs`` replays recorded decisions), so a draft
that passes here is refused by ``propose_version`` only for authority or a race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rules_service.adapters.ruleset_files.edit import place_lines, read_thresholds, set_thresholds
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.diff import diff_definitions
from rules_service.domain.errors import DomainError, InputInvalid, NotFound
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.explanation import explain, rule_parts
from rules_service.domain.impact import RecordedDecision
from rules_service.domain.inputs import validate_input
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.domain.testing import TestResult, run_tests
from rules_service.services.diffs import replay
from rules_service.services.governance import activate_due, parse_proposal

MAX_TRIES = 50
"""Most sample inputs tried at once."""


@dataclass(frozen=True)
class DraftCheck:
    """A draft's problems (each with its line where known), its embedded tests' results
    (each with the line the test starts on) and its thresholds as the form shows them."""

    problems: tuple[Problem, ...] = ()
    tests: tuple[TestResult, ...] = ()
    ruleset: Ruleset | None = field(default=None, repr=False)
    test_lines: tuple[int | None, ...] = ()
    thresholds: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """No problem and no failing test: the draft can be proposed."""
        return not self.problems and all(t.passed for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        lines = self.test_lines + (None,) * (len(self.tests) - len(self.test_lines))
        return {"ok": self.ok, "problems": [p.to_dict() for p in self.problems],
                "tests": [{**t.to_dict(), "line": line}
                          for t, line in zip(self.tests, lines, strict=False)],
                "thresholds": self.thresholds}


def check_draft(evaluator: Evaluator, name: str, content: str) -> DraftCheck:
    """Parses the draft as a version of ``name`` and runs its embedded tests."""
    try:
        ruleset, _ = parse_proposal(name, content, None)
    except DomainError as exc:
        return DraftCheck(tuple(getattr(exc, "problems", ()) or (Problem("", exc.message),)),
                          thresholds=read_thresholds(content))
    tests = tuple(run_tests(ruleset, evaluator))
    failing = [f"tests[{i}]" for i, t in enumerate(tests) if not t.passed]
    lines = place_lines(content, failing) if failing else {}
    return DraftCheck((), tests, ruleset,
                      tuple(lines.get(f"tests[{i}]") for i in range(len(tests))),
                      dict(ruleset.thresholds))


def set_draft_thresholds(content: str, typed: dict[str, str]) -> dict[str, Any]:
    """The draft with the thresholds form's values written in (comments and layout kept),
    and the problem of each field that could not be written, which keeps its old value."""
    text, problems = set_thresholds(content, typed)
    return {"content": text, "problems": [p.to_dict() for p in problems]}


def lines_for(content: str, problems: Sequence[Problem]) -> list[Problem]:
    """The problems, each without a line given the line of its place in ``content``."""
    missing = [p.place for p in problems if p.line is None and p.place]
    lines = place_lines(content, missing) if missing else {}
    return [Problem(p.place, p.message, lines.get(p.place), p.column) if p.line is None
            else p for p in problems]


def draft_thresholds(content: str) -> dict[str, Any] | None:
    """The thresholds the draft's text holds, or None when it cannot be read."""
    return read_thresholds(content)


def _decide_each(evaluator: Evaluator, ruleset: Ruleset, inputs: Sequence[Any]
                 ) -> list[dict[str, Any]]:
    """Each input's decision with its explanation, or the input's problems."""
    answers: list[dict[str, Any]] = [{} for _ in inputs]
    valid: list[tuple[int, dict[str, Any]]] = []
    for i, raw in enumerate(inputs):
        try:
            if not isinstance(raw, dict):
                raise InputInvalid([Problem("input", "must be an object")])
            valid.append((i, validate_input(ruleset, raw)))
        except InputInvalid as exc:
            answers[i] = {"input": raw, "problems": [p.to_dict() for p in exc.problems]}
    evaluations = evaluator.evaluate_many(ruleset, [data for _, data in valid])
    parts = rule_parts(ruleset)
    for (i, data), ev in zip(valid, evaluations, strict=True):
        reason = ev.fallback_reason if ev.fallback else None
        answers[i] = {"input": data, **ev.to_dict(),
                      "explanation": explain(ruleset, data, parts=parts, fallback_reason=reason)}
    return answers


def try_draft(evaluator: Evaluator, name: str, content: str, inputs: Sequence[Any],
              uow: UnitOfWork | None = None) -> list[dict[str, Any]]:
    """What the draft decides for each sample input, and (given ``uow``) what the active
    version decides beside it, under ``active`` (null without an active version): dry
    runs, nothing is recorded.

    Each answer is the decision (outcome, fired and deciding rules with reasons, the
    explanation) or the input's problems; a draft with problems of its own raises
    ``RulesetInvalid``.
    """
    ruleset, _ = parse_proposal(name, content, None)
    inputs = inputs[:MAX_TRIES]
    answers = _decide_each(evaluator, ruleset, inputs)
    if uow is None:
        return answers
    with uow.readonly():
        rs = uow.rulesets.get(name)
        active = uow.versions.active(rs.id) if rs is not None else None
        active_ruleset = active.ruleset if active is not None else None
        active_number = active.number if active is not None else None
    if active_ruleset is None:
        return [{**a, "active": None} for a in answers]
    now = _decide_each(evaluator, active_ruleset, inputs)
    return [{**a, "active": {"version": active_number, **b}}
            for a, b in zip(answers, now, strict=True)]


def preview_draft(uow: UnitOfWork, evaluator: Evaluator, name: str, content: str, *,
                  impact: int = 100) -> dict[str, Any]:
    """The draft's diff against the active version and its impact on recent decisions."""
    ruleset, _ = parse_proposal(name, content, None)
    activate_due(uow)
    with uow.readonly():
        rs = uow.rulesets.get(name)
        if rs is None:
            raise NotFound(f"no ruleset named {name}")
        active = uow.versions.active(rs.id)
        before = dict(active.definition) if active is not None else None
        before_ruleset = active.ruleset if active is not None else None
        records = [RecordedDecision(decision_id, dict(data), Outcome(outcome))
                   for decision_id, data, outcome in uow.decisions.recent_outcomes(rs.id, impact)]
        active_number = active.number if active is not None else None
    diff = diff_definitions(before, dict(ruleset.definition))
    report = replay(evaluator, before_ruleset, ruleset, records)
    return {"ruleset": name, "from": active_number, "to": None, **diff.to_dict(),
            "impact": report.to_dict()}
