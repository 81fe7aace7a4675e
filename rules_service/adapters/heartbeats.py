"""The notification workers' heartbeats: one row per worker process."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rules_service.adapters.orm import WorkerHeartbeatRow

FORGET_AFTER = timedelta(days=7)
"""A worker silent this long (stopped, its host gone) is no longer listed."""


@dataclass(frozen=True)
class Heartbeat:
    """A worker's last pass and its totals since it started."""

    worker: str
    started_at: datetime
    beat_at: datetime
    passes: int
    escalation_steps: int
    events_dispatched: int
    delivered: int
    failed: int
    dead: int
    last_pass_ms: float


class HeartbeatRepository:
    """Reads and writes ``worker_heartbeats``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def save(self, beat: Heartbeat) -> None:
        """Writes the worker's row (inserted the first time), and forgets workers silent
        for ``FORGET_AFTER``."""
        row = self.session.get(WorkerHeartbeatRow, beat.worker)
        values = {f.name: getattr(beat, f.name) for f in fields(beat)}
        if row is None:
            self.session.add(WorkerHeartbeatRow(**values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
        self.session.execute(delete(WorkerHeartbeatRow).where(
            WorkerHeartbeatRow.beat_at < beat.beat_at - FORGET_AFTER))

    def all(self) -> list[Heartbeat]:
        """Every worker heard from in the last ``FORGET_AFTER``, by name."""
        rows = self.session.scalars(select(WorkerHeartbeatRow)
                                    .order_by(WorkerHeartbeatRow.worker))
        return [Heartbeat(**{f.name: getattr(r, f.name) for f in fields(Heartbeat)})
                for r in rows]
