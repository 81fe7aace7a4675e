"""Recorded decisions and escalations: idempotent recording, cursor listing, resolution."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import uuid_utils

from rules_service.adapters.decision_log import DecisionRecord, EscalationRecord
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import lifecycle
from rules_service.domain.decision import Evaluation
from rules_service.domain.errors import Conflict, NotFound, RequestInvalid
from rules_service.domain.escalations import RESOLUTIONS, DecisionFacts, Escalation
from rules_service.domain.explanation import explain
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.services.governance import resolve_actor, ruleset_of
from rules_service.services.views import iso

MAX_PAGE = 1000


@dataclass(frozen=True)
class EscalationView:
    """An escalation: who must look at a decision, by when, and how it was resolved."""

    id: str
    decision_id: str
    ruleset: str
    version: int
    to_role: str
    status: str
    due_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    comment: str
    decision: dict[str, Any] | None = None
    steps: tuple[dict[str, Any], ...] | None = None

    def is_overdue(self, now: datetime) -> bool:
        """Open and past its due time."""
        return self.status == "open" and self.due_at is not None and self.due_at < now

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON form; ``overdue`` is included when ``now`` is given."""
        out: dict[str, Any] = {
            "id": self.id, "decision_id": self.decision_id, "ruleset": self.ruleset,
            "version": self.version, "to_role": self.to_role, "status": self.status,
            "due_at": iso(self.due_at), "created_at": iso(self.created_at),
            "resolved_at": iso(self.resolved_at), "resolved_by": self.resolved_by,
            "resolution": self.resolution, "comment": self.comment}
        if self.decision is not None:
            out["decision"] = self.decision
        if self.steps is not None:
            out["steps"] = list(self.steps)
        if now is not None:
            out["overdue"] = self.is_overdue(now)
        return out


@dataclass(frozen=True)
class DecisionView:
    """A recorded decision. ``replayed`` is true when an idempotent retry returned it."""

    decision_id: str
    ruleset: str
    version: int
    outcome: str
    fired_rules: list[dict[str, Any]]
    deciding_rules: list[str]
    escalation: EscalationView | None
    fallback: bool
    fallback_reason: str | None
    evaluated_at: datetime
    duration_ms: float
    input: dict[str, Any]
    caller: str
    idempotency_key: str | None
    replayed: bool = False
    explanation: dict[str, Any] | None = None
    paused_outcome: str | None = None
    """Taken while the ruleset was paused: what its rules decided (``outcome`` is then
    an escalation to the approver)."""
    paused_reason: str | None = None

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The decision as the API answers it; ``full`` adds input, caller and idempotency
        key; ``explanation`` is there when it was asked for."""
        esc = self.escalation
        out: dict[str, Any] = {
            "decision_id": self.decision_id, "ruleset": self.ruleset, "version": self.version,
            "outcome": self.outcome, "fired_rules": self.fired_rules,
            "deciding_rules": self.deciding_rules,
            "escalation": None if esc is None else {
                "id": esc.id, "to_role": esc.to_role, "due_at": iso(esc.due_at)},
            "fallback": self.fallback, "fallback_reason": self.fallback_reason,
            "evaluated_at": iso(self.evaluated_at), "duration_ms": self.duration_ms,
            "paused": self.paused_outcome is not None, "paused_outcome": self.paused_outcome}
        if self.paused_outcome is not None:
            out["paused_reason"] = self.paused_reason
        if full:
            out.update({"input": self.input, "caller": self.caller,
                        "idempotency_key": self.idempotency_key})
            if esc is not None:
                out["escalation"] = esc.to_dict()
        if self.explanation is not None:
            out["explanation"] = self.explanation
        return out


def request_hash(ruleset: str, version: int | None, data: dict[str, Any]) -> str:
    """Fingerprint of an evaluate request, to tell a retry from a different request."""
    text = json.dumps({"ruleset": ruleset, "version": version, "input": data},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StoredEscalation(Protocol):
    """What this module reads of a stored escalation."""

    @property
    def id(self) -> str: ...
    @property
    def decision_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def to_role(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def resolved_at(self) -> datetime | None: ...
    @property
    def resolved_by(self) -> str | None: ...
    @property
    def resolution(self) -> str | None: ...
    @property
    def comment(self) -> str: ...


class _Named(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...


class StoredDecision(Protocol):
    """What this module reads of a stored decision, as the decision repository gives it."""

    @property
    def id(self) -> str: ...
    @property
    def ruleset(self) -> _Named: ...
    @property
    def version(self) -> int: ...
    @property
    def outcome(self) -> str: ...
    @property
    def fired_rules(self) -> list[dict[str, Any]]: ...
    @property
    def deciding_rules(self) -> list[str]: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def fallback_reason(self) -> str | None: ...
    @property
    def evaluated_at(self) -> datetime: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def input(self) -> dict[str, Any]: ...
    @property
    def caller(self) -> str: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def request_hash(self) -> str | None: ...
    @property
    def escalation(self) -> StoredEscalation | None: ...
    @property
    def paused_outcome(self) -> str | None: ...
    @property
    def paused_reason(self) -> str | None: ...


def _escalation_view(row: StoredEscalation, ruleset: str) -> EscalationView:
    return EscalationView(row.id, row.decision_id, ruleset, row.version,
                          row.to_role, row.status, row.due_at, row.created_at,
                          row.resolved_at, row.resolved_by, row.resolution, row.comment)


def escalation_context(decision: DecisionFacts) -> dict[str, Any]:
    """What a person resolving an escalation needs of its decision: the input, and the
    deciding rules with their reasons."""
    reasons = {f.get("id"): f.get("reason") for f in decision.fired_rules}
    return {"input": dict(decision.input), "outcome": decision.outcome,
            "deciding_rules": [{"id": rule, "reason": reasons.get(rule)}
                               for rule in decision.deciding_rules],
            "fallback": decision.fallback, "fallback_reason": decision.fallback_reason,
            "paused": decision.paused_outcome is not None,
            "paused_outcome": decision.paused_outcome,
            "paused_reason": decision.paused_reason,
            "evaluated_at": iso(decision.evaluated_at)}


def _escalation_in_context(uow: UnitOfWork, escalation: Escalation) -> EscalationView:
    """The view with the decision's context and the steps taken along the runbook's path
    (read only for escalations that took any)."""
    taken = uow.escalations.steps(escalation.id) if escalation.steps_taken else []
    view = dataclasses.replace(
        _escalation_view(escalation, escalation.ruleset),
        steps=tuple({"step": t.step, "principal": t.principal, "at": iso(t.at)}
                    for t in taken))
    if escalation.decision is None:
        return view
    return dataclasses.replace(view, decision=escalation_context(escalation.decision))


def decision_view(row: StoredDecision, ruleset: str, escalation: StoredEscalation | None,
                  replayed: bool = False) -> DecisionView:
    """The view of a decision row and its escalation (given, so nothing is lazily loaded)."""
    esc = _escalation_view(escalation, ruleset) if escalation is not None else None
    return DecisionView(row.id, ruleset, row.version, row.outcome,
                        list(row.fired_rules), list(row.deciding_rules), esc, row.fallback,
                        row.fallback_reason, row.evaluated_at, row.duration_ms,
                        dict(row.input), row.caller, row.idempotency_key, replayed,
                        paused_outcome=row.paused_outcome, paused_reason=row.paused_reason)


def _view(row: StoredDecision, replayed: bool = False) -> DecisionView:
    return decision_view(row, row.ruleset.name, row.escalation, replayed)


def escalation_due_at(ruleset: Ruleset, now: datetime) -> datetime | None:
    """When an escalation opened now is due: the runbook's response-time target from now."""
    target = ruleset.response_time_target
    if not target:
        return None
    try:
        return now + lifecycle.parse_duration(target)
    except ValueError:
        return None  # an unreadable target means no deadline, not a lost decision


def new_id() -> str:
    """A time-ordered UUID (version 7): new rows land at the end of the indexes."""
    return str(uuid_utils.uuid7())


def decision_record(ruleset_id: int, version: int, ruleset: Ruleset, evaluation: Evaluation,
                    *, caller: str, now: datetime, idempotency_key: str | None = None,
                    request_hash: str | None = None) -> DecisionRecord:
    """What is stored of one decision: the decision, and its escalation when it escalates."""
    escalation = None
    if evaluation.outcome is Outcome.ESCALATE:
        escalation = EscalationRecord(new_id(), evaluation.escalate_to or "approver",
                                      escalation_due_at(ruleset, now))
    return DecisionRecord(
        id=new_id(), ruleset_id=ruleset_id, version=version, input=dict(evaluation.input),
        outcome=evaluation.outcome.value,
        fired_rules=[f.to_dict() for f in evaluation.fired_rules],
        deciding_rules=list(evaluation.deciding_rules), fallback=evaluation.fallback,
        fallback_reason=evaluation.fallback_reason, caller=caller,
        idempotency_key=idempotency_key or None, request_hash=request_hash,
        evaluated_at=now, duration_ms=round(float(evaluation.duration_ms), 3),
        escalation=escalation,
        paused_outcome=evaluation.paused_outcome.value if evaluation.paused_outcome else None,
        paused_reason=evaluation.paused_reason)


def record_view(record: DecisionRecord, ruleset: str) -> DecisionView:
    """The view of a decision just stored, built from what was written (no read back)."""
    esc = record.escalation
    escalation = None if esc is None else EscalationView(
        esc.id, record.id, ruleset, record.version, esc.to_role, "open", esc.due_at,
        record.evaluated_at, None, None, None, "")
    return DecisionView(record.id, ruleset, record.version, record.outcome,
                        record.fired_rules, record.deciding_rules, escalation,
                        record.fallback, record.fallback_reason, record.evaluated_at,
                        record.duration_ms, record.input, record.caller,
                        record.idempotency_key, paused_outcome=record.paused_outcome,
                        paused_reason=record.paused_reason)


def _replay(row: StoredDecision, digest: str | None) -> DecisionView:
    if row.request_hash != digest:
        raise Conflict("idempotency_conflict", f"idempotency key {row.idempotency_key!r} was "
                       f"already used by this caller for a different request")
    return _view(row, replayed=True)


def find_replay(uow: UnitOfWork, caller: str, idempotency_key: str | None,
                digest: str | None) -> DecisionView | None:
    """The decision recorded earlier under this caller's key (409 if the request differs)."""
    if not idempotency_key:
        return None
    with uow.readonly():
        row = uow.decisions.by_idempotency_key(caller, idempotency_key)
        return _replay(row, digest) if row is not None else None


def answers(uow_factory: Callable[[], UnitOfWork], ruleset: str,
            records: Sequence[DecisionRecord], inserted: set[str]) -> list[DecisionView]:
    """What each caller is told once the records were written: its decision, or, when its
    idempotency key was taken, the decision holding the key (409 for another request)."""
    out = []
    for record in records:
        if record.id in inserted:
            out.append(record_view(record, ruleset))
            continue
        replay = find_replay(uow_factory(), record.caller, record.idempotency_key,
                             record.request_hash)
        if replay is None:  # the key's holder vanished: the database says otherwise
            raise RuntimeError(f"decision {record.id} was neither stored nor a replay")
        out.append(replay)
    return out


def record_decision(uow: UnitOfWork, *, ruleset: str, version: int, evaluation: Evaluation,
                    caller: str, idempotency_key: str | None = None,
                    request_hash: str | None = None,
                    evaluated_at: datetime | None = None) -> DecisionView:
    """Records one decision (and its escalation) in a transaction of its own.

    With an idempotency key, a repeat by the same caller returns the first decision
    (``replayed``) and records nothing; the same key with a different request is 409
    ``idempotency_conflict``. Race-safe through the (caller, key) unique constraint.
    The evaluate path records through a ``DecisionStore`` instead (group commit).
    """
    with uow:
        now = evaluated_at or uow.now()
        rs = uow.rulesets.get(ruleset)
        if rs is None:
            raise NotFound(f"no ruleset named {ruleset}")
        version_row = uow.versions.get(rs.id, version)
        if version_row is None:
            raise NotFound(f"ruleset {ruleset} has no version {version}")
        record = decision_record(rs.id, version, ruleset_of(version_row), evaluation,
                                 caller=caller, now=now, idempotency_key=idempotency_key,
                                 request_hash=request_hash)
        inserted = uow.decision_log.write([record])
        uow.commit()
    [view] = answers(lambda: uow, rs.name, [record], inserted)
    return view


def explained(ruleset: Ruleset, view: DecisionView) -> DecisionView:
    """The decision with its explanation, worked out from its recorded input and
    ``ruleset`` (the version that decided it)."""
    reason = view.fallback_reason if view.fallback else None
    return dataclasses.replace(view, explanation=explain(ruleset, view.input,
                                                         fallback_reason=reason))


def with_explanation(uow: UnitOfWork, view: DecisionView) -> DecisionView:
    """The decision with its explanation, the version that decided it loaded from ``uow``."""
    with uow.readonly():
        rs = uow.rulesets.get(view.ruleset)
        version_row = uow.versions.get(rs.id, view.version) if rs is not None else None
        if version_row is None:  # foreign keys keep the version of a recorded decision
            raise NotFound(f"ruleset {view.ruleset} has no version {view.version}")
        ruleset = ruleset_of(version_row)
    return explained(ruleset, view)


def get_decision(uow: UnitOfWork, decision_id: str) -> DecisionView:
    """One decision by id, with its explanation; 404 when unknown."""
    with uow.readonly():
        row = uow.decisions.get(decision_id)
        if row is None:
            raise NotFound(f"no decision with id {decision_id}")
        view = _view(row)
        version_row = uow.versions.get(row.ruleset.id, row.version)
        assert version_row is not None  # foreign keys keep the version
        return explained(ruleset_of(version_row), view)


def _encode_cursor(row: StoredDecision) -> str:
    raw = f"{row.evaluated_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, decision_id = raw.split("|", 1)
        return lifecycle.ensure_utc(datetime.fromisoformat(at)), decision_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestInvalid([Problem("cursor", "not a cursor this service gave out")]) from None


_FIELD_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def input_values(text: str) -> list[Any]:
    """What a value typed in a search may stand for in a JSON input: the text itself, and
    the number or true/false it spells."""
    out: list[Any] = [text]
    if text in ("true", "false"):
        out.append(text == "true")
    else:
        try:
            number = float(text)
        except ValueError:
            return out
        if math.isfinite(number):
            out.append(int(number) if number.is_integer() else number)
    return out


def _input_filters(given: Mapping[str, str], problems: list[Problem]
                   ) -> list[tuple[tuple[str, ...], list[Any]]]:
    out = []
    for name, value in given.items():
        path = tuple(name.split("."))
        if not all(_FIELD_NAME.match(step) for step in path):
            problems.append(Problem(f"input.{name}", "not a field name (letters, digits, _, "
                                                     "dotted for nested fields)"))
            continue
        out.append((path, input_values(value)))
    return out


def list_decisions(uow: UnitOfWork, *, ruleset: str | None = None, outcome: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   limit: int = 100, cursor: str | None = None, caller: str | None = None,
                   caller_prefix: str | None = None, inputs: Mapping[str, str] | None = None
                   ) -> tuple[list[DecisionView], str | None]:
    """Decisions newest first, and the cursor of the next page (None on the last page).

    ``caller_prefix`` keeps callers whose name starts with it; ``inputs`` maps a dotted
    input field to a value its input must hold (``900`` matches the number and the text).
    """
    problems: list[Problem] = []
    input_equals = _input_filters(inputs or {}, problems)
    if not 1 <= limit <= MAX_PAGE:
        problems.append(Problem("limit", f"must be between 1 and {MAX_PAGE}"))
    if outcome is not None and outcome not in ("approve", "escalate", "reject"):
        problems.append(Problem("outcome", "must be approve, escalate or reject"))
    if problems:
        raise RequestInvalid(problems)
    before = _decode_cursor(cursor) if cursor else None
    with uow.readonly():
        ruleset_id = None
        if ruleset is not None:
            rs = uow.rulesets.get(ruleset)
            if rs is None:
                raise NotFound(f"no ruleset named {ruleset}")
            ruleset_id = rs.id
        rows = list(uow.decisions.list(
            ruleset_id=ruleset_id, outcome=outcome,
            since=lifecycle.ensure_utc(since) if since else None,
            until=lifecycle.ensure_utc(until) if until else None,
            before=before, limit=limit + 1, caller=caller, caller_prefix=caller_prefix,
            input_equals=input_equals))
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return [_view(r) for r in rows[:limit]], next_cursor


def list_escalations(uow: UnitOfWork, *, status: str | None = None,
                     ruleset: str | None = None, overdue: bool = False,
                     limit: int = MAX_PAGE) -> list[EscalationView]:
    """Escalations oldest first, each with its decision's input and deciding rules;
    ``overdue`` keeps the open ones past their due time."""
    if status is not None and status not in ("open", "resolved"):
        raise RequestInvalid([Problem("status", "must be open or resolved")])
    with uow.readonly():
        ruleset_id = None
        if ruleset is not None:
            rs = uow.rulesets.get(ruleset)
            if rs is None:
                raise NotFound(f"no ruleset named {ruleset}")
            ruleset_id = rs.id
        found = uow.escalations.find(status=status, ruleset_id=ruleset_id,
                                     overdue_at=uow.now() if overdue else None, limit=limit)
        return [_escalation_in_context(uow, e) for e in found]


def resolve_escalation(uow: UnitOfWork, escalation_id: str, *, resolution: str,
                       comment: str = "", actor: str) -> EscalationView:
    """Resolves an open escalation: the holder of the role it is addressed to, the deciding
    version's approver, or an admin decides.

    403 for anyone else; 404 unknown; 409 ``already_resolved``.
    """
    if resolution not in RESOLUTIONS:
        raise RequestInvalid([Problem("resolution", "must be approve or reject")])
    with uow:
        who = resolve_actor(uow, actor)
        escalation = uow.escalations.get(escalation_id, for_update=True, with_decision=True)
        if escalation is None:
            raise NotFound(f"no escalation with id {escalation_id}")
        version_row = uow.versions.get(escalation.ruleset_id, escalation.version)
        assert version_row is not None  # foreign keys keep the version
        escalation.resolve(who, ruleset_of(version_row), resolution, comment, uow.now())
        uow.escalations.save(escalation)
        view = _escalation_in_context(uow, escalation)
        uow.commit()
    return view
