"""The evaluate use cases: one input or a batch, recorded before the caller sees the answer.

Each function is one use case over ``services.decisions`` (recording, idempotency) and
``services.governance`` (which version decides): load the version, validate the input
against its schema, evaluate, record. A recorded decision always comes from a version
that went through sign-off (the active one, or a pinned once-active one); a dry run may
pin any version, which is how a proposal is tried before anyone signs it.

While a ruleset is paused, what is recorded is an escalation to the approver with the
rules' own answer kept beside it (``domain.pause.while_paused``); a dry run answers what
the rules decide and says that the ruleset is paused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rules_service.adapters.decision_log import DecisionStore
from rules_service.domain.decision import Evaluation
from rules_service.domain.errors import Conflict, InputInvalid, RequestInvalid
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.explanation import RuleParts, explain, rule_parts
from rules_service.domain.inputs import validate_input
from rules_service.domain.pause import Pause, while_paused
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.services import decisions
from rules_service.services.decisions import DecisionView
from rules_service.services.live import LiveState
from rules_service.services.phases import phase
from rules_service.services.views import iso


@dataclass(frozen=True)
class DryRunDecision:
    """What a version would decide; nothing is recorded, so there is no decision id."""

    ruleset: str
    version: int
    evaluation: Evaluation
    evaluated_at: datetime
    due_at: datetime | None
    explanation: dict[str, Any] | None = None
    pause: Pause | None = None
    """The pause in force: a recorded decision would go to the approver instead."""

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The decision JSON with ``decision_id`` null and ``dry_run`` true (and the
        explanation when it was asked for); when the ruleset is paused, ``paused`` is
        true and ``pause`` says by whom, since when and why."""
        ev = self.evaluation
        escalation = None
        if ev.outcome is Outcome.ESCALATE:
            escalation = {"id": None, "to_role": ev.escalate_to or "approver",
                          "due_at": iso(self.due_at)}
        out: dict[str, Any] = {
            "decision_id": None, "ruleset": self.ruleset, "version": self.version,
            "outcome": ev.outcome.value,
            "fired_rules": [f.to_dict() for f in ev.fired_rules],
            "deciding_rules": list(ev.deciding_rules), "escalation": escalation,
            "fallback": ev.fallback, "fallback_reason": ev.fallback_reason,
            "evaluated_at": iso(self.evaluated_at), "duration_ms": round(ev.duration_ms, 3),
            "dry_run": True, "paused": self.pause is not None}
        if self.pause is not None:
            out["pause"] = {"by": self.pause.by, "at": iso(self.pause.at),
                            "reason": self.pause.reason,
                            "message": f"{self.ruleset} is {self.pause.sentence()}; these "
                                       f"are the rules' answers, but a recorded decision "
                                       f"goes to the approver until it is resumed"}
        if full:
            out["input"] = dict(ev.input)
        if self.explanation is not None:
            out["explanation"] = self.explanation
        return out


Decision = DecisionView | DryRunDecision


def _explained(decision: Decision, ruleset: Ruleset, parts: RuleParts | None = None
               ) -> Decision:
    """The decision with its explanation, from the input it records and ``ruleset``."""
    if isinstance(decision, DryRunDecision):
        ev = decision.evaluation
        return replace(decision, explanation=explain(
            ruleset, ev.input, parts=parts,
            fallback_reason=ev.fallback_reason if ev.fallback else None))
    reason = decision.fallback_reason if decision.fallback else None
    return replace(decision, explanation=explain(ruleset, decision.input, parts=parts,
                                                 fallback_reason=reason))


def evaluate(live: LiveState, store: DecisionStore, evaluator: Evaluator, name: str,
             raw_input: dict[str, Any], *, version: int | None = None, dry_run: bool = False,
             caller: str, idempotency_key: str | None = None, explain: bool = False
             ) -> Decision:
    """Decides one input and records it (with its escalation) before returning.

    Warm, this reads no database: the deciding version comes from the process's live
    state and the decision is written by the group-commit store in one short transaction.
    404 unknown ruleset/version; 409 ``no_active_version``, ``version_not_live``, or
    ``idempotency_conflict`` (same key, different request); 422 ``input_invalid`` with
    every bad field. A repeated key with the same request returns the first decision.
    ``explain`` adds the explanation, worked out after the decision is recorded.
    """
    digest = decisions.request_hash(name, version, raw_input) if idempotency_key else None
    try:
        with phase("validate"):
            loaded = live.deciding_version(name, version, dry_run=dry_run)
            data = validate_input(loaded.ruleset, raw_input)
    except (InputInvalid, Conflict):
        # A retry of a recorded request is answered as such even if the ruleset has moved
        # on so far that the request would not be accepted now.
        replay = None if dry_run else decisions.find_replay(live.uow_factory(), caller,
                                                            idempotency_key, digest)
        if replay is None:
            raise
        return decisions.with_explanation(live.uow_factory(), replay) if explain else replay
    with phase("engine"):
        evaluation = evaluator.evaluate(loaded.ruleset, data)
    now = live.clock()
    pause = live.pause_of(loaded.name)
    answer: Decision
    if dry_run:
        answer = DryRunDecision(loaded.name, loaded.version, evaluation, now,
                                decisions.escalation_due_at(loaded.ruleset, now), pause=pause)
    else:
        if pause is not None:
            evaluation = while_paused(evaluation, pause)
        record = decisions.decision_record(
            loaded.ruleset_id, loaded.version, loaded.ruleset, evaluation, caller=caller,
            now=now, idempotency_key=idempotency_key, request_hash=digest)
        with phase("record"):
            inserted = store.write([record])
        [answer] = decisions.answers(live.uow_factory, loaded.name, [record], inserted)
        if answer.replayed and answer.version != loaded.version:
            return decisions.with_explanation(live.uow_factory(), answer) if explain \
                else answer
    return _explained(answer, loaded.ruleset) if explain else answer


def _batch_place(index: int, place: str) -> str:
    """``input.amount`` of the i-th input becomes ``inputs[i].amount``."""
    rest = place[len("input"):] if place == "input" or place.startswith(("input.", "input["))\
        else ("." + place if place else "")
    return f"inputs[{index}]{rest}"


def _validate_all(ruleset: Ruleset, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Every input validated; InputInvalid naming ``inputs[i].field`` for all bad ones."""
    problems: list[Problem] = []
    valid: list[dict[str, Any]] = []
    for i, raw in enumerate(inputs):
        if not isinstance(raw, dict):
            problems.append(Problem(f"inputs[{i}]", "must be an object"))
            continue
        try:
            valid.append(validate_input(ruleset, raw))
        except InputInvalid as exc:
            problems.extend(Problem(_batch_place(i, p.place), p.message, p.line, p.column)
                            for p in exc.problems)
    if problems:
        raise InputInvalid(problems)
    return valid


def evaluate_batch(live: LiveState, store: DecisionStore, evaluator: Evaluator, name: str,
                   inputs: Sequence[dict[str, Any]], *, version: int | None = None,
                   dry_run: bool = False, caller: str, limit: int = 1000,
                   explain: bool = False) -> list[Decision]:
    """Decides many inputs: all validated first (one bad input: 422, nothing recorded),
    then evaluated together and recorded in one transaction; ``explain`` adds each
    decision's explanation."""
    if not inputs:
        raise RequestInvalid([Problem("inputs", "give at least one input")])
    if len(inputs) > limit:
        raise RequestInvalid([Problem("inputs", f"at most {limit} inputs per batch, "
                                                f"not {len(inputs)}")])
    with phase("validate"):
        loaded = live.deciding_version(name, version, dry_run=dry_run)
        data = _validate_all(loaded.ruleset, inputs)
    with phase("engine"):
        evaluations = evaluator.evaluate_many(loaded.ruleset, data)
    now = live.clock()
    pause = live.pause_of(loaded.name)
    answers: list[Decision]
    if dry_run:
        due = decisions.escalation_due_at(loaded.ruleset, now)
        answers = [DryRunDecision(loaded.name, loaded.version, ev, now, due, pause=pause)
                   for ev in evaluations]
    else:
        if pause is not None:
            evaluations = [while_paused(ev, pause) for ev in evaluations]
        records = [decisions.decision_record(loaded.ruleset_id, loaded.version,
                                             loaded.ruleset, ev, caller=caller, now=now)
                   for ev in evaluations]
        with phase("record"):
            store.write(records)  # no idempotency keys: every record is inserted
        answers = [decisions.record_view(r, loaded.name) for r in records]
    if not explain:
        return answers
    parts = rule_parts(loaded.ruleset)
    return [_explained(a, loaded.ruleset, parts) for a in answers]
