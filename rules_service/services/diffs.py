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
from rules_service.domain.diff.text import FileDiff, file_diff
from rules_service.domain.errors import Conflict, InputInvalid, NotFound, RequestInvalid
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.impact import ImpactReport, RecordedDecision, replay_impact
from rules_service.domain.inputs import validate_input
from rules_service.domain.lifecycle import AuditAction, VersionStatus
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.domain.versions import Version
from rules_service.services.governance import activate_due, get_version
from rules_service.services.views import VersionView

MAX_IMPACT = 10_000


MAX_UNDO_DEPTH = 20


@dataclass(frozen=True)
class UndoneVersion:
    """A version in the active line whose changes the ``to`` version takes back."""

    version: int
    author: str
    note: str
    changes: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the version, who made it, and each of its changes taken back."""
        return {"version": self.version, "author": self.author, "note": self.note,
                "changes": list(self.changes),
                "summary": [c["summary"] for c in self.changes]}


@dataclass(frozen=True)
class DiffResult:
    """The diff between two versions of a ruleset, with the replay when asked for."""

    ruleset: str
    from_version: int | None
    to_version: int
    diff: RulesetDiff
    impact: ImpactReport | None = None
    undoes: tuple[UndoneVersion, ...] = ()
    version: VersionView | None = None
    file: FileDiff | None = None

    def to_dict(self) -> dict[str, Any]:
        """The API's ``{"from", "to", "changes", "summary"}``, ``impact``, ``undoes``,
        ``version``: the ``to`` version's author, note, base, time and sign-offs, and
        ``file``: the two files' line-by-line diff (comments and formatting included)."""
        return {"ruleset": self.ruleset, "from": self.from_version, "to": self.to_version,
                **self.diff.to_dict(),
                "undoes": [u.to_dict() for u in self.undoes],
                "version": (self.version.to_dict(include_content=False)
                            if self.version is not None else None),
                "impact": self.impact.to_dict() if self.impact is not None else None,
                "file": self.file.to_dict() if self.file is not None else None}


def _started_from(uow: UnitOfWork, ruleset_id: int, row: Version) -> int | None:
    """Where the author of ``row`` started: the base they stated, or the older version whose
    content the proposal repeats (a revert); None when unknown."""
    for event in uow.audit.for_ruleset(ruleset_id, row.number):
        if event.action is AuditAction.PROPOSED:
            stated = (event.details or {}).get("started_from")
            if isinstance(stated, int):
                return stated
    same = [v.number for v in uow.versions.for_ruleset(ruleset_id)
            if v.number < row.number and v.content_hash == row.content_hash]
    return same[-1] if same else None


def _undone(uow: UnitOfWork, ruleset_id: int, row: Version) -> tuple[UndoneVersion, ...]:
    """The changes of versions in the active line (newer than where the author started)
    that ``row`` takes back, newest version first.

    A change version V made at some place is taken back when ``row`` differs from V there
    and holds what V's base (or the version the author started from) held there.
    """
    origin = _started_from(uow, ruleset_id, row)
    origin_row = uow.versions.get(ruleset_id, origin) if origin is not None else None
    proposal = dict(row.definition)
    from_origin = (diff_definitions(dict(origin_row.definition), proposal).changes
                   if origin_row is not None else None)
    out: list[UndoneVersion] = []
    number = row.base_version
    for _ in range(MAX_UNDO_DEPTH):
        if number is None or (origin is not None and number <= origin):
            break
        version = uow.versions.get(ruleset_id, number)
        if version is None or version.base_version is None:
            break
        base = uow.versions.get(ruleset_id, version.base_version)
        if base is None:
            break
        own = [c.to_dict() for c in
               diff_definitions(dict(base.definition), dict(version.definition)).changes]
        differs = [c.to_dict() for c in
                   diff_definitions(dict(version.definition), proposal).changes]
        from_base = [c.to_dict() for c in
                     diff_definitions(dict(base.definition), proposal).changes]

        def held_by(changes: list[dict[str, Any]], change: dict[str, Any]) -> bool:
            return not any(_same_place(change, other) for other in changes)

        taken_back = tuple(
            c for c in own
            if any(_same_place(c, d) for d in differs)
            and (held_by(from_base, c) or (from_origin is not None and held_by(
                [x.to_dict() for x in from_origin], c))))
        if taken_back:
            out.append(UndoneVersion(version.number, version.author, version.note,
                                     taken_back))
        number = version.base_version
    return tuple(out)


def _same_place(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two changes touch the same thing: every identifying field (not the values) agrees."""
    pairs = {"rule_added": "rule_removed", "rule_removed": "rule_added",
             "threshold_added": "threshold_removed", "threshold_removed": "threshold_added",
             "input_added": "input_removed", "input_removed": "input_added"}
    if pairs.get(a["kind"], a["kind"]) != b["kind"]:
        return False
    values = {"kind", "summary", "before", "after", "when", "then", "rule", "direction",
              "added", "removed", "changed"}
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in values)


def batch_decider(evaluator: Evaluator, ruleset: Ruleset, records: list[RecordedDecision]
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


def replay(evaluator: Evaluator, before: Ruleset | None, after: Ruleset,
            records: list[RecordedDecision]) -> ImpactReport:
    """Each recorded input decided by both versions: only their differences are the change."""
    decide_before = batch_decider(evaluator, before, records) if before is not None else None
    return replay_impact(records, batch_decider(evaluator, after, records),
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
            pending = [v for v in uow.versions.open_versions(rs.id)
                       if v.status is VersionStatus.PENDING]
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
        to_ruleset = to_row.ruleset
        from_ruleset = from_row.ruleset if from_row is not None else None
        records = []
        if impact is not None:
            records = [RecordedDecision(decision_id, dict(data), Outcome(outcome))
                       for decision_id, data, outcome
                       in uow.decisions.recent_outcomes(rs.id, impact)]
        result_from = from_row.number if from_row is not None else None
        result_to = to_row.number
        undoes = _undone(uow, rs.id, to_row)
        text = file_diff(from_row.content if from_row is not None else "", to_row.content)
    report = replay(evaluator, from_ruleset, to_ruleset, records) if impact is not None else None
    version = get_version(uow, name, result_to)
    return DiffResult(name, result_from, result_to, diff, report, undoes, version, text)


def version_file_diff(uow: UnitOfWork, name: str, number: int) -> tuple[int | None, FileDiff]:
    """The line-by-line diff of a version's file against its base's (404 unknown)."""
    activate_due(uow)
    with uow.readonly():
        rs = uow.rulesets.get(name)
        row = uow.versions.get(rs.id, number) if rs is not None else None
        if rs is None or row is None:
            raise NotFound(f"ruleset {name} has no version {number}")
        base = (uow.versions.get(rs.id, row.base_version)
                if row.base_version is not None else None)
        return row.base_version, file_diff(base.content if base is not None else "",
                                           row.content)
