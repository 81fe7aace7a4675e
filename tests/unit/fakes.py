"""In-memory repositories and unit of work for the governance use cases: no database.

``FakeUnitOfWork`` implements ``services.unit_of_work.AbstractUnitOfWork`` (mypy checks it,
see the end of this module). A transaction left without ``commit`` is thrown away, as on a
database. Stored versions are copies: a use case's changes reach the store only through
``save``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from rules_service.domain.decision import Evaluation
from rules_service.domain.escalations import Escalation
from rules_service.domain.lifecycle import Actor, VersionFact, VersionStatus
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.shadow import (
    EndReason,
    ResultCount,
    Shadow,
    ShadowExample,
    ShadowResult,
    ShadowTally,
)
from rules_service.domain.versions import AuditEvent, RulesetEntry, RulesetRecord, Version
from rules_service.engine.reference import ReferenceEvaluator


def _copy(version: Version) -> Version:
    """A copy that shares the immutable parts (content, parsed rulesets) only."""
    return replace(version, signoffs=list(version.signoffs), events=[],
                   definition=dict(version.definition))


@dataclass
class FakeStore:
    """What a database would hold, as plain collections."""

    rulesets: dict[str, RulesetEntry] = field(default_factory=dict)
    versions: dict[tuple[int, int], Version] = field(default_factory=dict)
    audit: list[tuple[int, AuditEvent]] = field(default_factory=list)
    principals: dict[str, Actor] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    outbox: list[tuple[str, int | None, datetime, dict[str, Any]]] = field(
        default_factory=list)
    generation: int = 0
    shadows: list[Shadow] = field(default_factory=list)
    shadow_results: list[tuple[int, ShadowResult]] = field(default_factory=list)

    def snapshot(self) -> FakeStore:
        """A copy to restore on rollback (stored versions are never changed in place)."""
        return FakeStore(dict(self.rulesets), dict(self.versions), list(self.audit),
                         dict(self.principals), set(self.revoked), list(self.outbox),
                         self.generation, list(self.shadows), list(self.shadow_results))

    def restore(self, other: FakeStore) -> None:
        """Back to a snapshot."""
        self.__dict__.update(other.__dict__)


class FakeVersionStore:
    """``VersionStore`` over a FakeStore."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def _of(self, ruleset_id: int) -> list[Version]:
        return sorted((_copy(v) for (rid, _), v in self.store.versions.items()
                       if rid == ruleset_id), key=lambda v: v.number)

    def get(self, ruleset_id: int, number: int) -> Version | None:
        found = self.store.versions.get((ruleset_id, number))
        return _copy(found) if found is not None else None

    def for_ruleset(self, ruleset_id: int) -> list[Version]:
        return self._of(ruleset_id)

    def active(self, ruleset_id: int) -> Version | None:
        return next((v for v in self._of(ruleset_id) if v.status is VersionStatus.ACTIVE),
                    None)

    def newest(self, ruleset_id: int) -> Version | None:
        versions = self._of(ruleset_id)
        return versions[-1] if versions else None

    def open_versions(self, ruleset_id: int) -> list[Version]:
        return [v for v in self._of(ruleset_id) if v.is_open]

    def facts(self, ruleset_id: int) -> list[VersionFact]:
        return [v.fact() for v in self._of(ruleset_id)]

    def open_by_ruleset(self) -> dict[int, list[Version]]:
        out: dict[int, list[Version]] = {}
        for entry in self.store.rulesets.values():
            found = self.open_versions(entry.id)
            if found:
                out[entry.id] = found
        return out

    def active_by_ruleset(self) -> dict[int, Version]:
        out: dict[int, Version] = {}
        for entry in self.store.rulesets.values():
            found = self.active(entry.id)
            if found is not None:
                out[entry.id] = found
        return out

    def due_ruleset_names(self, now: datetime) -> list[str]:
        names = {entry.id: entry.name for entry in self.store.rulesets.values()}
        return sorted({names[v.ruleset_id] for v in self.store.versions.values()
                       if v.status is VersionStatus.APPROVED
                       and (v.effective_at is None or v.effective_at <= now)})

    def save(self, version: Version) -> None:
        self.store.versions[(version.ruleset_id, version.number)] = _copy(version)


class FakeRulesetStore:
    """``RulesetStore`` over a FakeStore; the lock is a no-op (one thread at a time)."""

    def __init__(self, store: FakeStore, versions: FakeVersionStore,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.versions = versions
        self.clock = clock

    def get(self, name: str) -> RulesetEntry | None:
        return self.store.rulesets.get(name)

    def list_all(self) -> list[RulesetEntry]:
        return sorted(self.store.rulesets.values(), key=lambda e: e.name)

    def _record(self, entry: RulesetEntry) -> RulesetRecord:
        loaded = [v for v in self.versions.for_ruleset(entry.id)
                  if v.status is VersionStatus.ACTIVE or v.is_open]
        return RulesetRecord(entry.id, entry.name, entry.title, entry.created_at,
                             loaded=loaded, history=self.versions.facts(entry.id),
                             paused=entry.paused)

    def get_for_update(self, name: str) -> RulesetRecord | None:
        entry = self.store.rulesets.get(name)
        return self._record(entry) if entry is not None else None

    def get_or_create_for_update(self, name: str, title: str) -> RulesetRecord:
        entry = self.store.rulesets.get(name)
        if entry is None:
            entry = RulesetEntry(len(self.store.rulesets) + 1, name, title, self.clock())
            self.store.rulesets[name] = entry
        return self._record(entry)

    def version_in(self, record: RulesetRecord, number: int) -> Version | None:
        found = record.find(number)
        if found is not None:
            return found
        loaded = self.versions.get(record.id, number)
        return record.adopt(loaded) if loaded is not None else None

    def save(self, record: RulesetRecord) -> None:
        self.store.rulesets[record.name] = replace(self.store.rulesets[record.name],
                                                   title=record.title, paused=record.paused)
        for version in record.loaded:
            self.versions.save(version)
        actives = [v for v in self.store.versions.values()
                   if v.ruleset_id == record.id and v.status is VersionStatus.ACTIVE]
        # The database's one-active-version index, here as an assertion.
        assert len(actives) <= 1, f"two active versions of {record.name}"


class FakeAuditStore:
    """``AuditStore`` over a FakeStore."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def add(self, ruleset_id: int, event: AuditEvent) -> AuditEvent:
        stored = replace(event, id=len(self.store.audit) + 1)
        self.store.audit.append((ruleset_id, stored))
        return stored

    def for_ruleset(self, ruleset_id: int, version: int | None = None,
                    action: str | None = None) -> list[AuditEvent]:
        return [e for rid, e in self.store.audit if rid == ruleset_id
                and (version is None or e.version == version)
                and (action is None or e.action == action)]


class FakeActorStore:
    """``ActorStore`` over a FakeStore."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def get(self, name: str) -> Actor | None:
        if name in self.store.revoked:
            return None
        return self.store.principals.get(name)

    def active_names(self) -> set[str]:
        return set(self.store.principals) - self.store.revoked


class FakeOutboxStore:
    """``OutboxStore`` over a FakeStore."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def add(self, event_type: str, ruleset_id: int | None, at: datetime,
            data: dict[str, Any]) -> None:
        self.store.outbox.append((event_type, ruleset_id, at, data))


class FakeShadowStore:
    """``ShadowStore`` over a FakeStore; results are added by the test."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def start(self, ruleset_id: int, version: int, *, sample: float,
              alert_above: float | None, actor: str, now: datetime) -> Shadow:
        self.end_for_version(ruleset_id, version, now, actor, EndReason.RESTARTED)
        shadow = Shadow(len(self.store.shadows) + 1, ruleset_id, version, sample,
                        alert_above, actor, now, now)
        self.store.shadows.append(shadow)
        return shadow

    def latest(self, ruleset_id: int, version: int) -> Shadow | None:
        found = [s for s in self.store.shadows
                 if (s.ruleset_id, s.version) == (ruleset_id, version)]
        return found[-1] if found else None

    def end_for_version(self, ruleset_id: int, version: int, at: datetime, actor: str,
                        reason: EndReason) -> bool:
        ended = False
        for i, s in enumerate(self.store.shadows):
            if (s.ruleset_id, s.version) == (ruleset_id, version) and s.running:
                self.store.shadows[i] = replace(s, ended_at=at, ended_by=actor,
                                                end_reason=reason.value)
                ended = True
        return ended

    def running(self, ruleset_id: int | None = None) -> list[Shadow]:
        return [s for s in self.store.shadows
                if s.running and ruleset_id in (None, s.ruleset_id)]

    def _results(self, shadow_id: int) -> list[ShadowResult]:
        return [r for i, r in self.store.shadow_results if i == shadow_id]

    def tally(self, shadow_id: int) -> ShadowTally:
        return ShadowTally.of(ResultCount(r.state, r.active_outcome, r.shadow_outcome,
                                          r.fallback, 1) for r in self._results(shadow_id))

    def examples(self, shadow_id: int, limit: int) -> tuple[ShadowExample, ...]:
        return tuple(ShadowExample(r.decision_id, r.active_outcome, str(r.shadow_outcome))
                     for r in self._results(shadow_id) if r.disagrees)[:limit]


class FakeEscalationStore:
    """Escalations as the inbox reads them: added by the test, found by status."""

    def __init__(self) -> None:
        self.items: list[Escalation] = []

    def find(self, *, status: str | None = None, ruleset_id: int | None = None,
             overdue_at: datetime | None = None, limit: int = 1000) -> list[Escalation]:
        out = [e for e in self.items
               if (status is None or e.status == status)
               and (ruleset_id is None or e.ruleset_id == ruleset_id)
               and (overdue_at is None or e.is_overdue(overdue_at))]
        return sorted(out, key=lambda e: (e.created_at, e.id))[:limit]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class FakeUnitOfWork:
    """The unit of work over a FakeStore: commit keeps, leaving without commit discards."""

    def __init__(self, store: FakeStore | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.clock = clock or FakeClock()
        self._versions = FakeVersionStore(self.store)
        self._rulesets = FakeRulesetStore(self.store, self._versions, self.clock)
        self._audit = FakeAuditStore(self.store)
        self._actors = FakeActorStore(self.store)
        self._outbox = FakeOutboxStore(self.store)
        self._shadows = FakeShadowStore(self.store)
        self.escalations = FakeEscalationStore()
        self._before: FakeStore | None = None
        self.commits = 0

    @property
    def rulesets(self) -> FakeRulesetStore:
        return self._rulesets

    @property
    def versions(self) -> FakeVersionStore:
        return self._versions

    @property
    def audit(self) -> FakeAuditStore:
        return self._audit

    @property
    def actors(self) -> FakeActorStore:
        return self._actors

    @property
    def outbox(self) -> FakeOutboxStore:
        return self._outbox

    @property
    def shadows(self) -> FakeShadowStore:
        return self._shadows

    def readonly(self) -> Self:
        return self

    def __enter__(self) -> Self:
        if self._before is not None:
            raise RuntimeError("the unit of work is already entered")
        self._before = self.store.snapshot()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        before, self._before = self._before, None
        if before is not None:
            self.store.restore(before)

    def commit(self) -> None:
        if self._before is None:
            raise RuntimeError("the unit of work is not entered")
        self.commits += 1
        self._before = self.store.snapshot()

    def live_changed(self) -> None:
        self.store.generation += 1

    def now(self) -> datetime:
        return self.clock()

    def add_principal(self, name: str, *, is_admin: bool = False,
                      is_automation: bool = False) -> None:
        """Test setup: a principal, as ``principals add`` would store it."""
        self.store.principals[name] = Actor(name, is_admin, is_automation)


class FakeEvaluator(ReferenceEvaluator):
    """The in-process reference evaluator, counting batches: no worker processes."""

    def __init__(self) -> None:
        self.batches = 0

    def evaluate_many(self, ruleset: Ruleset, inputs: Sequence[dict[str, Any]]
                      ) -> list[Evaluation]:
        self.batches += 1
        return super().evaluate_many(ruleset, inputs)


if TYPE_CHECKING:
    from rules_service.domain.evaluator import Evaluator
    from rules_service.services.inbox import InboxUnitOfWork
    from rules_service.services.unit_of_work import AbstractUnitOfWork

    def _implements(uow: FakeUnitOfWork, evaluator: FakeEvaluator
                    ) -> tuple[AbstractUnitOfWork, InboxUnitOfWork, Evaluator]:
        return uow, uow, evaluator


def staffed_unit_of_work(people: tuple[str, ...],
                         clock: Callable[[], datetime] | None = None) -> FakeUnitOfWork:
    """A fake unit of work with ``root`` (an admin), ``bot`` (an automation) and each of
    ``people`` as principals."""
    fake = FakeUnitOfWork(clock=clock)
    fake.add_principal("root", is_admin=True)
    fake.add_principal("bot", is_automation=True)
    for name in people:
        fake.add_principal(name)
    return fake
