"""Health check: is the database reachable and migrated?"""

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
