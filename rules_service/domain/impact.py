"""Impact replay: what a proposed version would have decided for inputs already decided.

An approver signs off more confidently on "12 of the last 1,000 claims would now be
escalated instead of approved" than on a condition's text. Replay decides each recorded
input twice, under the ``from`` version and under the ``to`` version, and reports the
outcomes that differ between the two: only those are the change's doing. A recorded
outcome may differ from what ``from`` decides today (it was made by an older version, a
pinned version or a fallback); that is drift, counted apart and never blamed on the change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules_service.domain.errors import InputInvalid
from rules_service.domain.ruleset import Outcome

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class RecordedDecision:
    """What replay needs from a recorded decision."""

    decision_id: str
    input: Mapping[str, Any]
    outcome: Outcome


@dataclass(frozen=True)
class ImpactExample:
    """One recorded decision whose outcome the proposed version changes."""

    decision_id: str
    input: Mapping[str, Any]
    before: Outcome
    after: Outcome
    recorded: Outcome | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form; ``recorded`` is the outcome stored when the decision was made."""
        return {"decision_id": self.decision_id, "input": dict(self.input),
                "before": self.before.value, "after": self.after.value,
                "recorded": self.recorded.value if self.recorded is not None else None}


@dataclass(frozen=True)
class RejectedExample:
    """One recorded input that the proposed version's input schema refuses."""

    decision_id: str
    input: Mapping[str, Any]
    before: Outcome
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"decision_id": self.decision_id, "input": dict(self.input),
                "before": self.before.value, "reason": self.reason}


@dataclass(frozen=True)
class ImpactReport:
    """How the ``to`` version's outcomes differ from the ``from`` version's, input by input.

    ``drift`` counts inputs whose recorded outcome differs from what ``from`` decides now,
    by ``recorded->from`` transition in ``drift_transitions``; ``base_rejected`` counts
    inputs the ``from`` version's schema refuses (nothing to compare them with).
    """

    replayed: int
    changed: int
    input_rejected: int
    transitions: dict[str, int] = field(default_factory=dict)
    examples: tuple[ImpactExample, ...] = ()
    rejected_examples: tuple[RejectedExample, ...] = ()
    fallbacks: int = 0
    drift: int = 0
    drift_transitions: dict[str, int] = field(default_factory=dict)
    base_rejected: int = 0

    @property
    def unchanged(self) -> int:
        """Replayed decisions that keep their outcome."""
        return self.replayed - self.changed - self.input_rejected - self.base_rejected

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as in the diff's ``impact`` section."""
        return {
            "replayed": self.replayed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "input_rejected": self.input_rejected,
            "fallbacks": self.fallbacks,
            "transitions": dict(self.transitions),
            "examples": [e.to_dict() for e in self.examples],
            "rejected_examples": [e.to_dict() for e in self.rejected_examples],
            "drift": self.drift,
            "drift_transitions": dict(self.drift_transitions),
            "base_rejected": self.base_rejected,
        }


def _attribute(record: Any, name: str) -> Any:
    # Records may be RecordedDecision, an ORM/record object, or a plain dict from JSON.
    if isinstance(record, Mapping):
        if name not in record:
            raise KeyError(f"recorded decision has no {name!r}")
        return record[name]
    return getattr(record, name)


def _outcome(value: Any) -> Outcome:
    if isinstance(value, Outcome):
        return value
    inner = getattr(value, "outcome", None)
    if inner is not None:
        return _outcome(inner)
    return Outcome(value)


def _problem_text(error: BaseException) -> str:
    problems = getattr(error, "problems", None)
    if problems:
        return "; ".join(
            f"{getattr(p, 'place', '')}: {getattr(p, 'message', p)}".lstrip(": ")
            for p in problems)
    return str(error)


def _interleave(groups: Iterable[list[ImpactExample]], limit: int) -> tuple[ImpactExample, ...]:
    """Up to ``limit`` examples, one from each transition in turn, so rare ones show too."""
    queues = [list(g) for g in groups]
    out: list[ImpactExample] = []
    while len(out) < limit and any(queues):
        for queue in queues:
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    return tuple(out)


def _ordered(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class _Replay:
    """The counts and the bounded examples of one replay, as it goes."""

    max_examples: int
    replayed: int = 0
    changed: int = 0
    input_rejected: int = 0
    fallbacks: int = 0
    drift: int = 0
    base_rejected: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    drift_transitions: Counter[str] = field(default_factory=Counter)
    # First few examples per transition, kept bounded whatever the number of decisions.
    per_transition: dict[str, list[ImpactExample]] = field(default_factory=dict)
    rejected_examples: list[RejectedExample] = field(default_factory=list)

    def refused(self, decision_id: str, data: Any, before: Outcome,
                error: BaseException) -> None:
        """The ``to`` version's schema refused the input."""
        self.input_rejected += 1
        if len(self.rejected_examples) < self.max_examples:
            self.rejected_examples.append(
                RejectedExample(decision_id, data, before, _problem_text(error)))

    def decided(self, decision_id: str, data: Any, recorded: Outcome, before: Outcome,
                result: Any) -> None:
        """Both versions decided the input (``before`` and ``result``)."""
        if before is not recorded:
            self.drift += 1
            self.drift_transitions[f"{recorded.value}->{before.value}"] += 1
        if getattr(result, "fallback", False) is True:
            self.fallbacks += 1
        after = _outcome(result)
        if after is before:
            return
        self.changed += 1
        key = f"{before.value}->{after.value}"
        self.transitions[key] += 1
        bucket = self.per_transition.setdefault(key, [])
        if len(bucket) < self.max_examples:
            bucket.append(ImpactExample(decision_id, data, before, after, recorded))

    def report(self) -> ImpactReport:
        ordered = _ordered(self.transitions)
        examples = _interleave((self.per_transition[k] for k in ordered), self.max_examples)
        return ImpactReport(self.replayed, self.changed, self.input_rejected, ordered, examples,
                            tuple(self.rejected_examples), self.fallbacks, self.drift,
                            _ordered(self.drift_transitions), self.base_rejected)


def replay_impact(
    decisions: Iterable[Any],
    decide: Callable[[Mapping[str, Any]], Any],
    rejected: tuple[type[BaseException], ...] = (InputInvalid,),
    max_examples: int = MAX_EXAMPLES,
    *,
    decide_before: Callable[[Mapping[str, Any]], Any] | None = None,
) -> ImpactReport:
    """Decide each recorded input under ``decide_before`` and ``decide``; report what differs.

    ``decisions`` yields records with ``decision_id``, ``input`` and ``outcome`` (attributes
    or keys). ``decide`` is the ``to`` version, ``decide_before`` the ``from`` version (none:
    a first version, compared with the recorded outcomes). Each returns an Outcome, an
    outcome string, or anything with an ``.outcome`` (an Evaluation). Exceptions of the
    ``rejected`` types mean that version's schema refuses the input: counted
    (``input_rejected`` for ``to``, ``base_rejected`` for ``from``), not raised. Any other
    exception is a bug and propagates.
    """
    replay = _Replay(max_examples)
    for record in decisions:
        decision_id = str(_attribute(record, "decision_id"))
        data = _attribute(record, "input")
        recorded = _outcome(_attribute(record, "outcome"))
        replay.replayed += 1
        # Both versions decide every input, so each call sequence stays aligned with the
        # records (the service hands out batched results in order).
        before_error: BaseException | None = None
        before = recorded
        if decide_before is not None:
            try:
                before = _outcome(decide_before(data))
            except rejected as error:
                before_error = error
        try:
            result = decide(data)
        except rejected as error:
            replay.refused(decision_id, data, before, error)
            continue
        if before_error is not None:
            replay.base_rejected += 1
            continue
        replay.decided(decision_id, data, recorded, before, result)
    return replay.report()
