"""The diff use case: what changed between two versions, and what it would change in practice.

``impact=N`` decides the inputs of the ruleset's last N recorded decisions under both the
``from`` and the ``to`` version and reports how many outcomes differ, and how
(``escalate->approve: 12``); inputs whose recorded outcome differs from what ``from``
decides (drift: older versions, pinned versions, fallbacks) are counted apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.decision import Evaluation
from rules_service.domain.diff import RulesetDiff, diff_definitions
from rules_service.domain.errors import Conflict, InputInvalid, NotFound, RequestInvalid
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.impact import ImpactReport, RecordedDecision, replay_impact
from rules_service.domain.inputs import validate_input
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.services.governance import activate_due, ruleset_of

MAX_IMPACT = 10_000


@dataclass(frozen=True)
class DiffResult:
    """The diff between two versions of a ruleset, with the replay when asked for."""

    ruleset: str
    from_version: int | None
    to_version: int
    diff: RulesetDiff
    impact: ImpactReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """The contract's ``{"from", "to", "changes", "summary"}`` plus ``impact``."""
        return {"ruleset": self.ruleset, "from": self.from_version, "to": self.to_version,
                **self.diff.to_dict(),
                "impact": self.impact.to_dict() if self.impact is not None else None}


def _decider(evaluator: Evaluator, ruleset: Ruleset, records: list[RecordedDecision]
             ) -> Callable[[Mapping[str, Any]], Evaluation]:
    """A decide function for replay_impact, answering each record in turn from one batch."""
    # Validate every input first, then evaluate the valid ones in one batch: an engine pool
    # answers a batch far faster than one call per record.
    checked: list[dict[str, Any] | InputInvalid] = []
    for record in records:
        try:
            checked.append(validate_input(ruleset, dict(record.input)))
        except InputInvalid as exc:
            checked.append(exc)
    valid = [c for c in checked if not isinstance(c, InputInvalid)]
    evaluations: Iterator[Evaluation] = iter(evaluator.evaluate_many(ruleset, valid))
    results: Iterator[dict[str, Any] | InputInvalid] = iter(checked)

    def decide(_: Mapping[str, Any]) -> Evaluation:
        # replay_impact calls this once per record, in order.
        result = next(results)
        if isinstance(result, InputInvalid):
            raise result
        return next(evaluations)

    return decide


def _replay(evaluator: Evaluator, before: Ruleset | None, after: Ruleset,
            records: list[RecordedDecision]) -> ImpactReport:
    """Each recorded input decided by both versions: only their differences are the change."""
    decide_before = _decider(evaluator, before, records) if before is not None else None
    return replay_impact(records, _decider(evaluator, after, records),
                         decide_before=decide_before)


def diff_versions(uow: UnitOfWork, evaluator: Evaluator, name: str, *,
                  from_version: int | None = None, to_version: int | None = None,
                  impact: int | None = None) -> DiffResult:
    """The changes from ``from_version`` to ``to_version``, optionally with replayed impact.

    ``to`` defaults to the newest pending version (409 ``no_pending_version`` without one)
    and ``from`` to the base of ``to`` (none for a first version: everything is added).
    404 for an unknown ruleset or version.
    """
    if impact is not None and not 1 <= impact <= MAX_IMPACT:
        raise RequestInvalid([Problem("impact", f"must be between 1 and {MAX_IMPACT}")])
    activate_due(uow)
    with uow.readonly():
        rs = uow.rulesets.get(name)
        if rs is None:
            raise NotFound(f"no ruleset named {name}")
        if to_version is None:
            pending = [v for v in uow.versions.open_versions(rs.id) if v.status == "pending"]
            if not pending:
                raise Conflict("no_pending_version", f"ruleset {name} has no pending version; "
                               f"name the versions to compare with from= and to=")
            to_row = pending[-1]
        else:
            found = uow.versions.get(rs.id, to_version)
            if found is None:
                raise NotFound(f"ruleset {name} has no version {to_version}")
            to_row = found
        if from_version is None:
            base = to_row.base_version
            from_row = uow.versions.get(rs.id, base) if base is not None else None
        else:
            from_row = uow.versions.get(rs.id, from_version)
            if from_row is None:
                raise NotFound(f"ruleset {name} has no version {from_version}")
        diff = diff_definitions(dict(from_row.definition) if from_row is not None else None,
                                dict(to_row.definition))
        to_ruleset = ruleset_of(to_row)
        from_ruleset = ruleset_of(from_row) if from_row is not None else None
        records = []
        if impact is not None:
            records = [RecordedDecision(decision_id, dict(data), Outcome(outcome))
                       for decision_id, data, outcome
                       in uow.decisions.recent_outcomes(rs.id, impact)]
        result_from = from_row.number if from_row is not None else None
        result_to = to_row.number
    report = _replay(evaluator, from_ruleset, to_ruleset, records) if impact is not None else None
    return DiffResult(name, result_from, result_to, diff, report)
