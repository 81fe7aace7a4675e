"""Shadow mode: a pending or approved version deciding live traffic beside the active one.

Impact replay answers "what would this version have decided on the last N inputs?".
Shadow mode answers the approver's next question, "what does it decide on today's
traffic?", without touching that traffic: the evaluate path does no shadow work at all.
A runner (``services.shadow_runner``) reads the decisions recorded since the shadow
began, decides each sampled one again with the shadowed version and stores one result
per (shadow, decision). The counts below are always derived from those results, so they
are exact, and a recount from the decision log reproduces them (``in_sample`` depends on
the decision id alone).

This module holds the rules: who may start or stop a shadow, which versions may be
shadowed, which decisions fall in the sample, what the results add up to, and when the
disagreement rate calls for ``version.shadow_diverged``. It touches no database.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rules_service.domain.errors import Conflict, Forbidden, RequestInvalid
from rules_service.domain.lifecycle import Actor, VersionStatus
from rules_service.domain.problems import Problem
from rules_service.domain.versions import Version

MAX_EXAMPLES = 5
"""Examples of disagreement shown with the counts."""

ALERT_MIN_DECISIONS = 20
"""Decisions a shadow must have decided before its disagreement rate may raise the alert:
two disagreements in the first three decisions say little."""

_HASH_SPACE = 2**64


class ResultState(StrEnum):
    """What became of one sampled decision in a shadow."""

    DECIDED = "decided"
    """The shadowed version decided it (its fallback included)."""
    REFUSED = "refused"
    """The shadowed version's input schema refuses the recorded input."""
    SHED = "shed"
    """Not shadowed: the runner was too far behind and dropped the oldest work."""


class EndReason(StrEnum):
    """Why a shadow ended."""

    STOPPED = "stopped"
    ACTIVATED = "activated"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    STALE = "stale"
    RESTARTED = "restarted"


ENDING_ACTIONS: frozenset[str] = frozenset({"activated", "rejected", "withdrawn", "stale"})
"""Audit actions of a version that end its shadow (it can no longer become active
through sign-off, or it already did)."""


def in_sample(decision_id: str, sample: float) -> bool:
    """Whether a decision falls in a ``sample`` share: a hash of its id alone, so the same
    decisions are chosen by every runner and by a recount."""
    if sample >= 1.0:
        return True
    digest = hashlib.sha256(decision_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < sample * _HASH_SPACE


def settings_problems(sample: Any, alert_above: Any) -> list[Problem]:
    """Every problem of a shadow's settings: ``sample`` in (0, 1], ``alert_above`` in
    [0, 1) or none."""
    problems: list[Problem] = []
    if (isinstance(sample, bool) or not isinstance(sample, int | float)
            or not math.isfinite(sample) or not 0 < sample <= 1):
        problems.append(Problem("sample", "must be a number greater than 0 and at most 1"))
    if alert_above is not None and (
            isinstance(alert_above, bool) or not isinstance(alert_above, int | float)
            or not math.isfinite(alert_above) or not 0 <= alert_above < 1):
        problems.append(Problem("alert_above",
                                "must be a number from 0 up to (not including) 1, or null"))
    return problems


def check_settings(sample: Any, alert_above: Any) -> None:
    """Refuses bad settings, naming every problem."""
    problems = settings_problems(sample, alert_above)
    if problems:
        raise RequestInvalid(problems)


def may_run_shadow(actor: Actor, version: Version) -> bool:
    """The version's author, a holder (primary or backup) of any owner role of the
    ruleset, or an admin; never an automation."""
    if actor.is_automation:
        return False
    if actor.is_admin or actor.name == version.author:
        return True
    authority = version.authority
    return any(actor.name in authority.holders_of(role) for role in authority.owners)


def check_can_run_shadow(actor: Actor, version: Version) -> None:
    """403 unless ``may_run_shadow``."""
    if not may_run_shadow(actor, version):
        raise Forbidden(f"{actor.name} is neither the author of version {version.number}, "
                        f"an owner of ruleset {version.ruleset_name}, nor an admin")


def check_can_set_alert(actor: Actor, version: Version) -> None:
    """The alert threshold is the business owner's (primary or backup), or an admin's."""
    if actor.is_admin or actor.name in version.authority.holders_of("business_owner"):
        return
    raise Forbidden(f"only the business_owner of ruleset {version.ruleset_name} or an admin "
                    f"sets alert_above; {actor.name} is neither")


def check_shadowable(version: Version) -> None:
    """Only a pending or approved version may be shadowed (409 otherwise)."""
    if not version.status.is_open:
        raise Conflict("not_shadowable",
                       f"version {version.number} is {version.status.value}: only a pending "
                       f"or approved version can run in shadow",
                       [{"place": "status",
                         "message": f"version {version.number} is "
                                    f"{version.status.value}"}])


def end_reason_for(action: str) -> EndReason:
    """The end reason of a version transition in ``ENDING_ACTIONS``."""
    return EndReason(action)


@dataclass(frozen=True)
class Shadow:
    """One start of a version in shadow."""

    id: int
    ruleset_id: int
    version: int
    sample: float
    alert_above: float | None
    started_by: str
    since: datetime
    scanned_until: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    alerted_at: datetime | None = None

    @property
    def running(self) -> bool:
        """Not ended yet."""
        return self.ended_at is None


@dataclass(frozen=True)
class ShadowResult:
    """One sampled decision as the shadow saw it."""

    decision_id: str
    evaluated_at: datetime
    state: ResultState
    active_outcome: str
    shadow_outcome: str | None = None
    fallback: bool = False

    @property
    def disagrees(self) -> bool:
        """The shadowed version decided otherwise than what the caller was answered."""
        return self.state is ResultState.DECIDED and self.shadow_outcome != self.active_outcome


@dataclass(frozen=True)
class ShadowExample:
    """A decision the shadowed version decided differently."""

    decision_id: str
    active_outcome: str
    shadow_outcome: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"decision_id": self.decision_id, "active_outcome": self.active_outcome,
                "shadow_outcome": self.shadow_outcome}


@dataclass(frozen=True)
class ResultCount:
    """How many results share a state, an active outcome, a shadow outcome, a fallback."""

    state: ResultState
    active_outcome: str
    shadow_outcome: str | None
    fallback: bool
    count: int


@dataclass(frozen=True)
class ShadowTally:
    """What a shadow's results add up to.

    ``decisions`` counts the sampled decisions the shadowed version looked at (decided or
    refused); ``disagreements`` those it decided otherwise, by ``active->shadow`` in
    ``by_change``; ``input_rejected`` those whose input its schema refuses; ``not_shadowed``
    the sampled decisions shed under overload (never looked at).
    """

    decisions: int = 0
    disagreements: int = 0
    by_change: dict[str, int] = field(default_factory=dict)
    input_rejected: int = 0
    fallbacks: int = 0
    not_shadowed: int = 0

    @classmethod
    def of(cls, counts: Iterable[ResultCount]) -> ShadowTally:
        """The tally of grouped result counts."""
        decisions = disagreements = rejected = fallbacks = shed = 0
        changes: dict[str, int] = {}
        for c in counts:
            if c.state is ResultState.SHED:
                shed += c.count
                continue
            decisions += c.count
            if c.state is ResultState.REFUSED:
                rejected += c.count
                continue
            fallbacks += c.count if c.fallback else 0
            if c.shadow_outcome != c.active_outcome:
                disagreements += c.count
                key = f"{c.active_outcome}->{c.shadow_outcome}"
                changes[key] = changes.get(key, 0) + c.count
        ordered = dict(sorted(changes.items(), key=lambda kv: (-kv[1], kv[0])))
        return cls(decisions, disagreements, ordered, rejected, fallbacks, shed)

    @property
    def disagreement_rate(self) -> float:
        """Disagreements over decided decisions (0 when none were decided)."""
        decided = self.decisions - self.input_rejected
        return self.disagreements / decided if decided else 0.0

    def diverged(self, alert_above: float | None) -> bool:
        """Whether the disagreement rate passed ``alert_above`` over enough decisions."""
        if alert_above is None:
            return False
        decided = self.decisions - self.input_rejected
        return decided >= ALERT_MIN_DECISIONS and self.disagreement_rate > alert_above


@dataclass(frozen=True)
class ShadowReport:
    """A shadow with its tally and examples: the GET body."""

    shadow: Shadow
    tally: ShadowTally
    examples: tuple[ShadowExample, ...]
    status: VersionStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the fixed fields, then what the runner knows besides."""
        s, t = self.shadow, self.tally
        return {"version": s.version, "since": _iso(s.since), "sample": s.sample,
                "decisions": t.decisions, "disagreements": t.disagreements,
                "by_change": dict(t.by_change),
                "examples": [e.to_dict() for e in self.examples],
                "not_shadowed": t.not_shadowed, "input_rejected": t.input_rejected,
                "fallbacks": t.fallbacks,
                "disagreement_rate": round(t.disagreement_rate, 6),
                "alert_above": s.alert_above, "alerted_at": _iso(s.alerted_at),
                "running": s.running, "started_by": s.started_by,
                "ended_at": _iso(s.ended_at), "ended_by": s.ended_by,
                "end_reason": s.end_reason, "caught_up_to": _iso(s.scanned_until)}


def diverged_event_data(shadow: Shadow, tally: ShadowTally) -> Mapping[str, Any]:
    """The body of ``version.shadow_diverged``."""
    return {"version": shadow.version, "sample": shadow.sample,
            "alert_above": shadow.alert_above, "decisions": tally.decisions,
            "disagreements": tally.disagreements,
            "disagreement_rate": round(tally.disagreement_rate, 6),
            "by_change": dict(tally.by_change)}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
