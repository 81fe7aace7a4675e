"""Liveness (is the database reachable?) and readiness (is its schema this code's?)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rules_service.adapters.database import DATABASE_ERRORS
from rules_service.adapters.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    """Whether the service can do its work, and why not."""

    ok: bool
    database: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"status": "ok" if self.ok else "unavailable", "database": self.database}


def check(uow: UnitOfWork) -> HealthReport:
    """Queries a real table, so a missing migration counts as unhealthy too."""
    try:
        with uow.readonly():
            uow.health.check()
    except DATABASE_ERRORS as exc:
        log.warning("health check failed: %s", exc)
        return HealthReport(False, "unreachable or not migrated")
    return HealthReport(True, "ok")


@dataclass(frozen=True)
class Readiness:
    """Whether this process should take traffic: the database answers and its schema is
    at the newest migration this code ships (``expected``)."""

    database: str
    schema: str | None
    expected: str | None
    reason: str | None

    @property
    def ready(self) -> bool:
        """True when nothing stands in the way."""
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"status": "ready" if self.ready else "not ready", "database": self.database,
                "schema": self.schema, "expected_schema": self.expected,
                "reason": self.reason}


def readiness(uow: UnitOfWork, expected: str | None) -> Readiness:
    """Reads the schema's revision and compares it with ``expected`` (the code's head)."""
    try:
        with uow.readonly():
            current = uow.health.schema_revision()
    except DATABASE_ERRORS as exc:
        log.warning("readiness check failed: %s", exc)
        return Readiness("unreachable", None, expected, "the database does not answer")
    if current == expected:
        return Readiness("ok", current, expected, None)
    if current is None:
        reason = (f"the database is not migrated; this code needs schema {expected}: "
                  "run 'rules-service db upgrade'")
    else:
        reason = (f"the schema is at {current}, this code needs {expected}: run "
                  "'rules-service db upgrade' (or, if a newer release migrated it, run "
                  "that release here)")
    return Readiness("ok", current, expected, reason)
