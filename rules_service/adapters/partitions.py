"""The monthly partitions of the decision log on PostgreSQL (migration 0007).

``decisions`` is partitioned by ``RANGE (evaluated_at)`` and ``escalations`` by ``RANGE
(decision_evaluated_at)``, both into the same calendar months (UTC), so a decision and its
escalation always live in partitions of the same month, named ``decisions_pYYYY_MM`` and
``escalations_pYYYY_MM``. Each table also has a ``DEFAULT`` partition, so an insert never
fails for lack of a partition; ``ensure_partitions`` creates the months ahead and moves
rows found in a default partition into partitions of their own months.

SQLite has no partitions: the functions here answer for PostgreSQL only, and the retention
(``services.retention``) deletes rows there instead of dropping partitions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, text

PARTITIONED = {"decisions": "evaluated_at", "escalations": "decision_evaluated_at"}
"""Each partitioned table and its partition key."""

PARTITION_NAME = re.compile(r"^(decisions|escalations)_(p(\d{4})_(\d{2})|default)\Z")


def is_partition(name: str | None) -> bool:
    """True for the name of a partition (not a table of the model)."""
    return bool(name and PARTITION_NAME.match(name))


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's ``include_name`` hook: comparing the schema with the model leaves the
    partitions out (they are made by migrations and maintenance, not by the model)."""
    return not (type_ == "table" and is_partition(name))


def include_object(obj: object, _name: str | None, type_: str, _reflected: bool,
                   _compare_to: object) -> bool:
    """Alembic's ``include_object`` hook: leaves out the foreign keys PostgreSQL adds, one
    per partition, under a foreign key that refers to a partitioned table."""
    if type_ != "foreign_key_constraint":
        return True
    referred = getattr(obj, "referred_table", None)
    return not is_partition(getattr(referred, "name", None))


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC: the span of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, at: datetime) -> Month:
        """The month holding a moment."""
        at = at.astimezone(UTC) if at.tzinfo else at
        return cls(at.year, at.month)

    @classmethod
    def parse(cls, label: str) -> Month:
        """``YYYY-MM`` or ``pYYYY_MM``."""
        found = re.fullmatch(r"p?(\d{4})[-_](\d{2})", label)
        if not found or not 1 <= int(found.group(2)) <= 12:
            raise ValueError(f"not a month: {label!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    def next(self) -> Month:
        """The month after."""
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def previous(self) -> Month:
        """The month before."""
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    @property
    def start(self) -> datetime:
        """Its first moment (inclusive bound)."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment of the next month (exclusive bound)."""
        return self.next().start

    @property
    def label(self) -> str:
        """``YYYY-MM``."""
        return f"{self.year:04d}-{self.month:02d}"

    def partition(self, table: str) -> str:
        """The partition of ``table`` for this month."""
        return f"{table}_p{self.year:04d}_{self.month:02d}"


def months_between(first: Month, last: Month) -> list[Month]:
    """Every month from ``first`` to ``last``, both included."""
    out: list[Month] = []
    current = first
    while current <= last:
        out.append(current)
        current = current.next()
    return out


def is_partitioned(connection: Connection) -> bool:
    """True when the decision log is partitioned here (PostgreSQL, at revision 0007+)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(text(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'decisions' AND n.nspname = current_schema()")).scalar()
    return kind == "p"


def existing_months(connection: Connection, table: str = "decisions") -> list[Month]:
    """The months that have a partition of ``table``, oldest first."""
    rows = connection.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = :table AND n.nspname = current_schema()"), {"table": table})
    months = []
    for (name,) in rows:
        found = PARTITION_NAME.match(name)
        if found and found.group(3):
            months.append(Month(int(found.group(3)), int(found.group(4))))
    return sorted(months)


def _create(connection: Connection, table: str, month: Month) -> None:
    connection.execute(text(
        f"CREATE TABLE IF NOT EXISTS {month.partition(table)} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"))


@dataclass
class MaintenanceReport:
    """What ``ensure_partitions`` found and did."""

    created: list[str] = field(default_factory=list)
    default_decisions: int = 0
    default_escalations: int = 0
    moved_months: list[str] = field(default_factory=list)
    months: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report, for people."""
        out = [f"partitions created: {', '.join(self.created) or 'none (all present)'}",
               f"found in the default partitions: {self.default_decisions} decisions, "
               f"{self.default_escalations} escalations"]
        if self.moved_months:
            out.append(f"moved them into their months: {', '.join(self.moved_months)}")
        out.append(month_ranges(self.months))
        return out


def month_ranges(labels: list[str]) -> str:
    """``YYYY-MM`` labels as runs of consecutive months, each gap named:
    ``months with partitions: 2026-01 .. 2026-03, 2026-06 (4; missing 2026-04, 2026-05)``."""
    if not labels:
        return "months with partitions: none"
    numbers = sorted({int(m[:4]) * 12 + int(m[5:7]) - 1 for m in labels})

    def name(n: int) -> str:
        return f"{n // 12:04d}-{n % 12 + 1:02d}"

    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    missing = [name(n) for (_, end), (start, _) in zip(runs, runs[1:], strict=False)
               for n in range(end + 1, start)]
    text = ", ".join(name(a) if a == b else f"{name(a)} .. {name(b)}" for a, b in runs)
    gaps = f"; missing {', '.join(missing)}" if missing else ""
    return f"months with partitions: {text} ({len(numbers)}{gaps})"


def _default_months(connection: Connection) -> list[Month]:
    rows = connection.execute(text(
        "SELECT DISTINCT date_trunc('month', evaluated_at AT TIME ZONE 'UTC') "
        "FROM decisions_default "
        "UNION SELECT DISTINCT date_trunc('month', decision_evaluated_at AT TIME ZONE 'UTC') "
        "FROM escalations_default"))
    return sorted(Month(at.year, at.month) for (at,) in rows)


def _move_out_of_default(connection: Connection, month: Month) -> None:
    """Creates the month's partitions and moves its rows there from the defaults.

    The default partitions hold rows of that month, so PostgreSQL refuses to create the
    partitions over them: the rows (and the escalations' steps, which refer to the
    escalations by a foreign key) are set aside in temporary tables, deleted, and inserted
    again once the partitions exist, all in the caller's transaction (concurrent inserts of
    that month wait on the default partitions' locks). Keys stay where they are: they refer
    to (id, evaluated_at), which does not change.
    """
    span = {"lo": month.start, "hi": month.end}
    for sql in (
        "CREATE TEMP TABLE moving_steps ON COMMIT DROP AS SELECT * FROM escalation_steps "
        "WHERE decision_evaluated_at >= :lo AND decision_evaluated_at < :hi",
        "CREATE TEMP TABLE moving_escalations ON COMMIT DROP AS SELECT * "
        "FROM escalations_default "
        "WHERE decision_evaluated_at >= :lo AND decision_evaluated_at < :hi",
        "CREATE TEMP TABLE moving_decisions ON COMMIT DROP AS SELECT * FROM decisions_default "
        "WHERE evaluated_at >= :lo AND evaluated_at < :hi",
        # Deleting the escalations cascades to their steps (kept above).
        "DELETE FROM escalations_default "
        "WHERE decision_evaluated_at >= :lo AND decision_evaluated_at < :hi",
        "DELETE FROM decisions_default WHERE evaluated_at >= :lo AND evaluated_at < :hi",
    ):
        connection.execute(text(sql), span)
    for table in PARTITIONED:
        _create(connection, table, month)
    for sql in (
        "INSERT INTO decisions SELECT * FROM moving_decisions",
        "INSERT INTO escalations SELECT * FROM moving_escalations",
        "INSERT INTO escalation_steps SELECT * FROM moving_steps",
        "DROP TABLE moving_steps, moving_escalations, moving_decisions",
    ):
        connection.execute(text(sql))


def ensure_partitions(connection: Connection, now: datetime, ahead: int) -> MaintenanceReport:
    """Creates the partitions of this month and ``ahead`` months after it (those missing),
    and moves any row found in a default partition into a partition of its month.
    Idempotent; runs in the caller's transaction."""
    report = MaintenanceReport()
    report.default_decisions = int(connection.execute(
        text("SELECT count(*) FROM decisions_default")).scalar() or 0)
    report.default_escalations = int(connection.execute(
        text("SELECT count(*) FROM escalations_default")).scalar() or 0)
    have = {table: set(existing_months(connection, table)) for table in PARTITIONED}
    if report.default_decisions or report.default_escalations:
        for month in _default_months(connection):
            _move_out_of_default(connection, month)
            report.moved_months.append(month.label)
            for table in PARTITIONED:
                if month not in have[table]:
                    report.created.append(month.partition(table))
                    have[table].add(month)
    wanted = months_between(Month.of(now), _ahead(Month.of(now), ahead))
    for month in wanted:
        for table in PARTITIONED:
            if month not in have[table]:
                _create(connection, table, month)
                report.created.append(month.partition(table))
                have[table].add(month)
    report.months = [m.label for m in sorted(have["decisions"])]
    return report


def _ahead(month: Month, count: int) -> Month:
    for _ in range(count):
        month = month.next()
    return month


def drop_month(connection: Connection, month: Month) -> None:
    """Detaches and drops the month's partitions, after deleting the rows of unpartitioned
    tables that belong to them (keys, escalation steps). The caller has archived the rows
    and checked no escalation there is open; this runs in its transaction."""
    span = {"lo": month.start, "hi": month.end}
    connection.execute(text("DELETE FROM decision_keys WHERE evaluated_at >= :lo "
                            "AND evaluated_at < :hi"), span)
    connection.execute(text("DELETE FROM escalation_steps WHERE decision_evaluated_at >= :lo "
                            "AND decision_evaluated_at < :hi"), span)
    for table in ("escalations", "decisions"):  # the referring table first
        name = month.partition(table)
        connection.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
        connection.execute(text(f"DROP TABLE {name}"))


def partition_names(months: Sequence[Month]) -> list[str]:
    """The partitions of both tables for these months."""
    return [m.partition(t) for m in months for t in PARTITIONED]
