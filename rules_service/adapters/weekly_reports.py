"""The weeks whose scheduled report went out (``weekly_reports``)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rules_service.adapters.orm import WeeklyReportRow


class WeeklyReportLog:
    """Remembers the weeks reported, so each week's scheduled report goes out once."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, week: date, at: datetime, rulesets: int) -> bool:
        """Records the week as sent in this transaction; False when it already is (by this
        or another worker: on PostgreSQL a racing claim waits for the other to commit)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (insert(WeeklyReportRow)
                .values(week_start=week, sent_at=at, rulesets=rulesets)
                .on_conflict_do_nothing(index_elements=["week_start"])
                .returning(WeeklyReportRow.week_start))
        # The row comes back only when this statement inserted it (rowcount is not
        # reliable for an upsert on every driver).
        return self.session.execute(stmt).first() is not None

    def sent_at(self, week: date) -> datetime | None:
        """When the week's scheduled report went out; None when it has not."""
        return self.session.scalar(select(WeeklyReportRow.sent_at)
                                   .where(WeeklyReportRow.week_start == week))
