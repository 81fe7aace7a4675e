"""The shadow runner: decides recorded decisions again with each version in shadow.

Where it runs, and why: in ``rules-service worker``, a process of its own, not in the API
processes. The evaluate path does no shadow work at all (no queue write, no extra query,
no thread competing for the API process's interpreter), so its answer, its record and its
latency are what they are without shadow mode. The worker already runs beside every
deployment (it delivers notifications) and has its own engine pool; the shadow work
shares neither the API's connection pool nor its engine workers.

The queue is the decision log itself, so nothing is lost when the worker dies: each pass
reads, for every shadow, the ruleset's decisions stamped since its read position
(``scanned_until``) that have no result yet (an anti-join, not a cursor over ids), keeps
the sampled ones (``domain.shadow.in_sample``), decides up to ``batch`` of them through
the engine path impact replay uses (``services.diffs.batch_decider``) outside any
transaction, then stores one result per decision and moves the read position in one
short transaction. A pass that dies before that commit leaves nothing behind and is done
again; results are keyed by (shadow, decision), so a retried or racing pass never counts
twice. Several workers may run on PostgreSQL: one pass at a time holds an advisory lock
(``ShadowRepository.lead``) and the others skip theirs, so the work is not done twice.

Decisions are stamped before they are committed, and not in stamp order, so the read
position only moves to ``commit_margin_s`` before the time of the read: a decision that
commits later than that after its stamp would be missed (the group commit takes
milliseconds; the margin defaults to 10 seconds). Under overload, when more than
``max_backlog`` sampled decisions wait, the oldest are stored as ``shed`` and counted as
``not_shadowed``: the counts say which decisions were not shadowed, never silently less.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rules_service.adapters.database import DATABASE_ERRORS
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.config import env_float, env_int
from rules_service.domain.errors import InputInvalid
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.impact import RecordedDecision
from rules_service.domain.ruleset import Outcome
from rules_service.domain.shadow import (
    ResultState,
    Shadow,
    ShadowResult,
    diverged_event_data,
    in_sample,
)
from rules_service.services.diffs import batch_decider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowSettings:
    """How the runner works: batch per pass, read window, backlog bound, commit margin."""

    batch: int = 500
    """Sampled decisions decided per shadow per pass."""
    scan_limit: int = 20_000
    """Decisions read per shadow per pass (ids and stamps only)."""
    max_backlog: int = 10_000
    """Sampled decisions allowed to wait; the oldest beyond are shed."""
    commit_margin_s: float = 10.0
    """How long after its stamp a decision may still commit and be found."""
    poll_interval_s: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShadowSettings:
        """Settings from ``RULES_SERVICE_SHADOW_*``."""
        env = os.environ if env is None else env
        d = cls()
        return cls(batch=env_int(env, "RULES_SERVICE_SHADOW_BATCH", d.batch, 1),
                   scan_limit=env_int(env, "RULES_SERVICE_SHADOW_SCAN_LIMIT", d.scan_limit, 1),
                   max_backlog=env_int(env, "RULES_SERVICE_SHADOW_MAX_BACKLOG",
                                       d.max_backlog, 1),
                   commit_margin_s=env_float(env, "RULES_SERVICE_SHADOW_COMMIT_MARGIN",
                                             d.commit_margin_s, 0.0),
                   poll_interval_s=env_float(env, "RULES_SERVICE_WORKER_POLL_INTERVAL",
                                             d.poll_interval_s, 0.01))


@dataclass(frozen=True)
class ShadowPass:
    """What one pass did, over every shadow."""

    decided: int = 0
    shed: int = 0
    alerts: int = 0
    behind: bool = False
    """Some shadow has more waiting than one pass takes: go again at once."""

    def __add__(self, other: ShadowPass) -> ShadowPass:
        return ShadowPass(self.decided + other.decided, self.shed + other.shed,
                          self.alerts + other.alerts, self.behind or other.behind)


@dataclass(frozen=True)
class _Work:
    """What a shadow's pass read: the decisions to decide, those to shed, where to move."""

    shadow: Shadow
    records: list[tuple[str, datetime, dict[str, Any], str]]
    shed: list[tuple[str, datetime]]
    next_position: datetime
    behind: bool


class ShadowRunner:
    """Keeps every shadow's results up to date with the decision log."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork],
                 evaluator: Callable[[], Evaluator],
                 settings: ShadowSettings | None = None) -> None:
        """``evaluator`` is asked for the engine only when there is something to decide:
        a worker with no version in shadow starts no engine processes."""
        self._uow = uow_factory
        self._evaluator = evaluator
        self.settings = settings or ShadowSettings()

    def run_once(self) -> ShadowPass:
        """One pass over every shadow with work left, by the one runner holding the lock
        (another worker's runner passes without doing anything meanwhile)."""
        lease = self._uow()
        with lease:
            if not lease.shadows.lead():
                return ShadowPass()
            uow = self._uow()
            with uow.readonly():
                shadows = uow.shadows.with_work()
            total = ShadowPass()
            for shadow in shadows:
                total += self.step(shadow.id)
            return total

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set; a failed pass is logged and tried again."""
        while not stop.is_set():
            try:
                done = self.run_once()
            except DATABASE_ERRORS as exc:
                log.warning("shadow pass failed (%s); trying again shortly", exc)
                done = ShadowPass()
            except Exception:  # one bad shadow must not stop the worker
                log.exception("shadow pass failed; trying again shortly")
                done = ShadowPass()
            if not done.behind:
                stop.wait(self.settings.poll_interval_s)

    def catch_up(self, max_passes: int = 1000) -> ShadowPass:
        """Passes until no shadow is behind (for ``--once`` and tests)."""
        total = ShadowPass()
        for _ in range(max_passes):
            done = self.run_once()
            total += done
            if not done.behind:
                break
        return total

    def step(self, shadow_id: int) -> ShadowPass:
        """Reads, decides and stores one batch of one shadow."""
        work = self._read(shadow_id)
        if work is None:
            return ShadowPass()
        results = self._decide(work)
        alerts = self._store(work, results)
        return ShadowPass(len(work.records), len(work.shed), alerts, work.behind)

    def _read(self, shadow_id: int) -> _Work | None:
        s = self.settings
        uow = self._uow()
        with uow.readonly():
            shadow = uow.shadows.get(shadow_id)
            if shadow is None:
                return None
            read_at = uow.now()
            seen = uow.shadows.unshadowed(shadow, shadow.scanned_until, shadow.ended_at,
                                          s.scan_limit)
            sampled = [key for key in seen if in_sample(key[0], shadow.sample)]
            cut = max(0, len(sampled) - s.max_backlog)
            shed, waiting = sampled[:cut], sampled[cut:]
            todo = waiting[:s.batch]
            records = uow.shadows.recorded(todo)
        # Everything stamped before the next position has been seen (or is still waiting,
        # and then the position stays at the oldest one waiting).
        bounds = [read_at - timedelta(seconds=s.commit_margin_s)]
        if len(seen) >= s.scan_limit:
            bounds.append(seen[-1][1])
        if len(waiting) > len(todo):
            bounds.append(waiting[len(todo)][1])
        if shadow.ended_at is not None:
            bounds.append(shadow.ended_at)
        behind = len(seen) >= s.scan_limit or len(waiting) > len(todo)
        return _Work(shadow, records, shed, min(bounds), behind)

    def _decide(self, work: _Work) -> list[ShadowResult]:
        if not work.records:
            return []
        uow = self._uow()
        with uow.readonly():
            version = uow.versions.get(work.shadow.ruleset_id, work.shadow.version)
        if version is None:
            return []
        recorded = [RecordedDecision(i, data, Outcome(outcome))
                    for i, _, data, outcome in work.records]
        decide = batch_decider(self._evaluator(), version.ruleset, recorded)
        out: list[ShadowResult] = []
        for (decision_id, at, data, outcome) in work.records:
            try:
                result = decide(data)
            except InputInvalid:
                out.append(ShadowResult(decision_id, at, ResultState.REFUSED, outcome))
                continue
            out.append(ShadowResult(decision_id, at, ResultState.DECIDED, outcome,
                                    result.outcome.value, result.fallback))
        return out

    def _store(self, work: _Work, results: list[ShadowResult]) -> int:
        shadow = work.shadow
        uow = self._uow()
        with uow:
            uow.shadows.add_results(shadow.id, [
                ShadowResult(i, at, ResultState.SHED, "") for i, at in work.shed])
            uow.shadows.add_results(shadow.id, results)
            uow.shadows.advance(shadow.id, work.next_position)
            alerts = 0
            if shadow.alert_above is not None and shadow.alerted_at is None:
                tally = uow.shadows.tally(shadow.id)
                if tally.diverged(shadow.alert_above) and uow.shadows.mark_alerted(
                        shadow.id, uow.now()):
                    uow.outbox.add("version.shadow_diverged", shadow.ruleset_id, uow.now(),
                                   dict(diverged_event_data(shadow, tally)))
                    alerts = 1
            uow.commit()
        if work.shed:
            log.warning("shadow of version %s shed %d decisions (backlog above %d)",
                        shadow.version, len(work.shed), self.settings.max_backlog)
        return alerts
