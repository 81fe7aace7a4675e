"""What the governance use cases need of a unit of work, as a protocol.

``adapters.unit_of_work.UnitOfWork`` implements it over SQLAlchemy; the unit tests'
``FakeUnitOfWork`` implements it in memory. The repositories hand back domain objects
(``Version``, ``RulesetRecord``, ``AuditEvent``), never rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from rules_service.domain.lifecycle import Actor, VersionFact
from rules_service.domain.shadow import EndReason, Shadow, ShadowExample, ShadowTally
from rules_service.domain.versions import AuditEvent, RulesetEntry, RulesetRecord, Version


class RulesetStore(Protocol):
    """Rulesets; ``get_for_update`` holds the lock that serialises a ruleset's transitions."""

    def get(self, name: str) -> RulesetEntry | None:
        """The ruleset by name, or None."""

    def list_all(self) -> Sequence[RulesetEntry]:
        """Every ruleset, by name."""

    def get_for_update(self, name: str) -> RulesetRecord | None:
        """The ruleset with its active and open versions, locked until the transaction ends."""

    def get_or_create_for_update(self, name: str, title: str) -> RulesetRecord:
        """The locked ruleset, created first when it does not exist."""

    def version_in(self, record: RulesetRecord, number: int) -> Version | None:
        """A version of the record, taken into it when it was not loaded yet."""

    def save(self, record: RulesetRecord) -> None:
        """Stores the record's title and every version it holds."""


class VersionStore(Protocol):
    """Versions of rulesets, read outside a transition."""

    def get(self, ruleset_id: int, number: int) -> Version | None:
        """One version, or None."""

    def for_ruleset(self, ruleset_id: int) -> Sequence[Version]:
        """Every version of a ruleset, oldest first."""

    def active(self, ruleset_id: int) -> Version | None:
        """The active version, if any."""

    def newest(self, ruleset_id: int) -> Version | None:
        """The highest-numbered version, if any."""

    def open_versions(self, ruleset_id: int) -> Sequence[Version]:
        """Pending and approved versions, oldest first."""

    def facts(self, ruleset_id: int) -> Sequence[VersionFact]:
        """Number, status, author and note of every version, oldest first."""

    def open_by_ruleset(self) -> dict[int, list[Version]]:
        """Open versions of every ruleset."""

    def active_by_ruleset(self) -> dict[int, Version]:
        """The active version of every ruleset that has one."""

    def due_ruleset_names(self, now: datetime) -> list[str]:
        """Rulesets with an approved version whose effective time has come."""


class AuditStore(Protocol):
    """The audit trail: append-only."""

    def add(self, ruleset_id: int, event: AuditEvent) -> AuditEvent:
        """Appends one event; returns it with its id."""

    def for_ruleset(self, ruleset_id: int, version: int | None = None,
                    action: str | None = None) -> Sequence[AuditEvent]:
        """A ruleset's events in the order they happened."""


class ActorStore(Protocol):
    """Principals as the lifecycle rules see them."""

    def get(self, name: str) -> Actor | None:
        """The principal, or None when unknown or revoked."""

    def active_names(self) -> set[str]:
        """Names of the principals that exist and are not revoked."""


class OutboxStore(Protocol):
    """Events to tell subscribers, written in the transaction of their change."""

    def add(self, event_type: str, ruleset_id: int | None, at: datetime,
            data: dict[str, Any]) -> None:
        """Adds one event."""


class ShadowStore(Protocol):
    """Versions in shadow and what their results add up to."""

    def start(self, ruleset_id: int, version: int, *, sample: float,
              alert_above: float | None, actor: str, now: datetime) -> Shadow:
        """A new shadow of the version from ``now``; a running one ends as restarted."""

    def latest(self, ruleset_id: int, version: int) -> Shadow | None:
        """The version's newest shadow, running or ended; None when never shadowed."""

    def end_for_version(self, ruleset_id: int, version: int, at: datetime, actor: str,
                        reason: EndReason) -> bool:
        """Ends the version's running shadow, if any; True when one ended."""

    def running(self, ruleset_id: int | None = None) -> list[Shadow]:
        """Shadows not ended, oldest first (of one ruleset, or all)."""

    def tally(self, shadow_id: int) -> ShadowTally:
        """The counts of the shadow's results."""

    def examples(self, shadow_id: int, limit: int) -> tuple[ShadowExample, ...]:
        """Up to ``limit`` of the newest disagreements, one per change in turn."""


class AbstractUnitOfWork(Protocol):
    """One transaction over the repositories; leaving it without commit rolls back."""

    @property
    def rulesets(self) -> RulesetStore: ...

    @property
    def versions(self) -> VersionStore: ...

    @property
    def audit(self) -> AuditStore: ...

    @property
    def actors(self) -> ActorStore: ...

    @property
    def outbox(self) -> OutboxStore: ...

    @property
    def shadows(self) -> ShadowStore: ...

    def readonly(self) -> Self:
        """Marks the next transaction as read-only."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def commit(self) -> None:
        """Commits the transaction."""

    def live_changed(self) -> None:
        """Announces a change every process must reload once this transaction commits."""

    def now(self) -> datetime:
        """The current time from the unit of work's clock."""
