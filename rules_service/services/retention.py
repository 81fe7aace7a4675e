"""Retention of the decision log: whole months older than the retention period are archived
to compressed JSON Lines, verified, and only then removed.

For each calendar month (UTC) that ended before ``now - older_than``, oldest first:

1. A month holding an open escalation is kept whole and reported: an open escalation is
   work someone still has to do, so it is never archived away, and neither is its month
   (one archive per month stays complete). The first run after it is resolved takes it.
2. Its decisions are written, in one snapshot, to ``decisions-YYYY-MM-<stamp>.jsonl.gz``
   in the archive directory: one decision per line (its input, fired and deciding rules,
   outcome, caller, timing) with its escalation and that escalation's steps, readable with
   ``zcat FILE | jq``. The file is read back: it must hold exactly as many lines, each
   valid JSON, as the month has decisions. Then ``...manifest.json`` records the month,
   the counts and the file's sha256 (``sha256sum`` prints the same).
3. Only then is the month removed, after checking in the removing transaction that it
   still holds the rows archived and no open escalation: on PostgreSQL its partitions of
   ``decisions`` and ``escalations`` are detached and dropped (``adapters.partitions``);
   on SQLite its decisions are deleted in batches, each batch with their keys and
   escalations (whose steps go by the foreign key's cascade).

The rollups (``decision_rollups*``, ``decision_totals``, ``escalation_rollups*``) are not
touched, so the dashboard and /metrics keep every figure they take from them for the
removed months. The dashboard's breach count is the exception: it counts escalations rows
(``notifications.breaches_by_ruleset``), so breaches of a removed month are no longer
counted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, delete, func, select, text

from rules_service.adapters import partitions
from rules_service.adapters.database import READONLY_OPTION
from rules_service.adapters.orm import (
    DecisionKeyRow,
    DecisionRow,
    EscalationRow,
    EscalationStepRow,
    RulesetRow,
)
from rules_service.adapters.partitions import Month
from rules_service.services.views import iso

DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
ESCALATIONS: Table = EscalationRow.__table__  # type: ignore[assignment]
KEYS: Table = DecisionKeyRow.__table__  # type: ignore[assignment]
STEPS: Table = EscalationStepRow.__table__  # type: ignore[assignment]
RULESETS: Table = RulesetRow.__table__  # type: ignore[assignment]

DELETE_BATCH = 5000
"""Decisions deleted per transaction on SQLite, so writers wait at most one batch."""


class RetentionError(RuntimeError):
    """The archive could not be written or verified: nothing of that month was removed."""


@dataclass
class MonthOutcome:
    """What retention did with one month."""

    month: str
    action: str
    decisions: int = 0
    escalations: int = 0
    archive: str | None = None
    sha256: str | None = None
    open_escalations: int = 0

    def line(self) -> str:
        """One line for people."""
        if self.action == "kept":
            return (f"{self.month}: kept, {self.open_escalations} open escalation(s) "
                    f"({self.decisions} decisions); resolve them and run again")
        where = f" -> {self.archive} (sha256 {self.sha256})" if self.archive else ""
        return (f"{self.month}: {self.action}, {self.decisions} decisions, "
                f"{self.escalations} escalations{where}")


@dataclass
class RetentionReport:
    """Every month looked at, and rows older than the cutoff left in a default partition."""

    cutoff: datetime
    months: list[MonthOutcome] = field(default_factory=list)
    old_rows_in_default: int = 0

    def lines(self) -> list[str]:
        """The report, for people."""
        out = [f"retention: months that ended before {iso(self.cutoff)}"]
        out += [m.line() for m in self.months] or ["nothing old enough"]
        if self.old_rows_in_default:
            out.append(f"{self.old_rows_in_default} old decisions are in the default "
                       f"partition: run 'rules-service db partitions' first")
        return out


def _in(column: Any, month: Month) -> Any:
    return and_(column >= month.start, column < month.end)


def _counts(conn: Connection, month: Month) -> tuple[int, int, int]:
    """(decisions, escalations, open escalations) of the month."""
    decisions = conn.execute(select(func.count()).select_from(DECISIONS).where(
        _in(DECISIONS.c.evaluated_at, month))).scalar_one()
    escalations, still_open = conn.execute(select(
        func.count(), func.count().filter(ESCALATIONS.c.status == "open")).where(
        _in(ESCALATIONS.c.decision_evaluated_at, month))).one()
    return int(decisions), int(escalations), int(still_open or 0)


def _months(conn: Connection, cutoff: datetime) -> list[Month]:
    """The months that ended before the cutoff and may hold decisions, oldest first."""
    if partitions.is_partitioned(conn):
        return [m for m in partitions.existing_months(conn) if m.end <= cutoff]
    oldest = conn.execute(select(func.min(DECISIONS.c.evaluated_at))).scalar()
    if oldest is None:
        return []
    last = Month.of(cutoff).previous()
    return partitions.months_between(Month.of(oldest), last) if Month.of(oldest) <= last else []


def _lines(conn: Connection, month: Month) -> Iterator[dict[str, Any]]:
    """Each decision of the month as its archive line, in (evaluated_at, id) order."""
    names = dict(conn.execute(select(RULESETS.c.id, RULESETS.c.name)).all())
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in conn.execute(select(STEPS).where(_in(STEPS.c.decision_evaluated_at, month))
                             .order_by(STEPS.c.escalation_id, STEPS.c.step)).mappings():
        steps.setdefault(step["escalation_id"], []).append(
            {"step": step["step"], "principal": step["principal"], "at": iso(step["at"])})
    e = ESCALATIONS
    query = (select(DECISIONS, *(c.label(f"escalation_{c.name}") for c in e.c))
             .select_from(DECISIONS.outerjoin(e, and_(
                 e.c.decision_id == DECISIONS.c.id,
                 e.c.decision_evaluated_at == DECISIONS.c.evaluated_at)))
             .where(_in(DECISIONS.c.evaluated_at, month))
             .order_by(DECISIONS.c.evaluated_at, DECISIONS.c.id))
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
    for row in result.mappings():
        escalation = None
        if row["escalation_id"] is not None:
            escalation = {c.name: row[f"escalation_{c.name}"] for c in e.c
                          if c.name not in ("decision_id", "decision_evaluated_at")}
            escalation["steps"] = steps.get(escalation["id"], [])
        yield {
            "decision_id": row["id"], "ruleset": names.get(row["ruleset_id"]),
            "ruleset_id": row["ruleset_id"], "version": row["version"],
            "outcome": row["outcome"], "input": row["input"],
            "fired_rules": row["fired_rules"], "deciding_rules": row["deciding_rules"],
            "fallback": row["fallback"], "fallback_reason": row["fallback_reason"],
            "caller": row["caller"], "idempotency_key": row["idempotency_key"],
            "request_hash": row["request_hash"], "evaluated_at": row["evaluated_at"],
            "duration_ms": row["duration_ms"], "escalation": escalation}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_archive(path: Path, expected: int) -> list[str]:
    """Reads an archive back: every line valid JSON with a decision id; returns the ids.
    RetentionError unless there are exactly ``expected`` lines."""
    ids = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                record = json.loads(line)
                if not isinstance(record, dict) or not record.get("decision_id"):
                    raise RetentionError(f"{path}: line {number} is not a decision")
                ids.append(str(record["decision_id"]))
    except (OSError, EOFError, ValueError) as exc:
        raise RetentionError(f"{path} cannot be read back: {exc}") from exc
    if len(ids) != expected:
        raise RetentionError(f"{path} holds {len(ids)} decisions, the month {expected}")
    if len(set(ids)) != len(ids):
        raise RetentionError(f"{path} holds a decision twice")
    return ids


def archive_month(engine: Engine, month: Month, directory: Path, stamp: str,
                  database: str) -> MonthOutcome:
    """Writes and verifies the month's archive and manifest, from one snapshot; removes
    nothing. The outcome says how many decisions and escalations it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    base = f"decisions-{month.label}-{stamp}"
    final, partial = directory / f"{base}.jsonl.gz", directory / f"{base}.jsonl.gz.partial"
    # One snapshot for the counts and the lines: REPEATABLE READ on PostgreSQL, a read
    # transaction on SQLite (WAL).
    reading = engine.execution_options(**(
        {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql"
        else {READONLY_OPTION: True}))
    with reading.connect() as conn, conn.begin():
        decisions, escalations, _ = _counts(conn, month)
        written = 0
        # mtime=0: the same rows make the same bytes, so the sha256 is reproducible.
        with partial.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                      mtime=0) as zipped:
            for record in _lines(conn, month):
                zipped.write(json.dumps(record, default=_json_default,
                                        separators=(",", ":")).encode() + b"\n")
                written += 1
    if written != decisions:
        partial.unlink(missing_ok=True)
        raise RetentionError(f"{month.label}: {written} decisions written, {decisions} counted")
    _fsync(partial)
    verify_archive(partial, decisions)
    os.replace(partial, final)
    digest = _sha256(final)
    manifest = {
        "period": month.label, "from": iso(month.start), "to": iso(month.end),
        "file": final.name, "sha256": digest, "bytes": final.stat().st_size,
        "decisions": decisions, "escalations": escalations, "database": database,
        "written_at": stamp,
        "format": "gzip JSON Lines: one decision per line, with its escalation and steps",
    }
    manifest_path = directory / f"{base}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(manifest_path)
    return MonthOutcome(month.label, "archived", decisions, escalations, str(final), digest)


def _remove_month(engine: Engine, month: Month, archived: MonthOutcome) -> None:
    """Removes the month, if it still holds exactly what was archived and nothing open."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres and partitions.is_partitioned(conn):
            names = ", ".join(partitions.partition_names([month]))
            conn.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        decisions, _, still_open = _counts(conn, month)
        if decisions != archived.decisions or still_open:
            raise RetentionError(
                f"{month.label} changed after it was archived ({decisions} decisions now, "
                f"{still_open} open escalations): nothing removed")
        if postgres and partitions.is_partitioned(conn):
            partitions.drop_month(conn, month)
            return
    while True:
        with engine.begin() as conn:
            batch = select(DECISIONS.c.id, DECISIONS.c.evaluated_at).where(
                _in(DECISIONS.c.evaluated_at, month)).limit(DELETE_BATCH)
            rows = conn.execute(batch).all()
            if not rows:
                return
            for start in range(0, len(rows), 500):
                ids = [r[0] for r in rows[start:start + 500]]
                conn.execute(delete(KEYS).where(KEYS.c.decision_id.in_(ids),
                                                _in(KEYS.c.evaluated_at, month)))
                conn.execute(delete(ESCALATIONS).where(
                    ESCALATIONS.c.decision_id.in_(ids),
                    _in(ESCALATIONS.c.decision_evaluated_at, month)))
                conn.execute(delete(DECISIONS).where(DECISIONS.c.id.in_(ids),
                                                     _in(DECISIONS.c.evaluated_at, month)))


def apply_retention(engine: Engine, *, older_than: timedelta, archive_dir: Path,
                    now: datetime, dry_run: bool = False) -> RetentionReport:
    """Archives, verifies and removes every month that ended before ``now - older_than``
    (see the module docstring). A month whose archive fails is not removed and stops the
    run (RetentionError); months already done stay done."""
    cutoff = now - older_than
    report = RetentionReport(cutoff)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    with engine.connect() as conn:
        months = _months(conn, cutoff)
        if partitions.is_partitioned(conn):
            report.old_rows_in_default = int(conn.execute(text(
                "SELECT count(*) FROM decisions_default WHERE evaluated_at < :cutoff"),
                {"cutoff": cutoff}).scalar() or 0)
        counted = {m: _counts(conn, m) for m in months}
    for month in months:
        decisions, escalations, still_open = counted[month]
        if still_open:
            report.months.append(MonthOutcome(month.label, "kept", decisions, escalations,
                                              open_escalations=still_open))
            continue
        postgres = engine.dialect.name == "postgresql"
        if decisions == 0 and escalations == 0:
            if not postgres:
                continue  # nothing stored for that month, nothing to do
            if not dry_run:  # an empty partition: nothing to archive
                _remove_month(engine, month, MonthOutcome(month.label, "empty"))
            report.months.append(MonthOutcome(month.label, "empty, partitions dropped"
                                              if not dry_run else "empty, would be dropped"))
            continue
        if dry_run:
            report.months.append(MonthOutcome(month.label, "would be archived and removed",
                                              decisions, escalations))
            continue
        outcome = archive_month(engine, month, archive_dir, stamp, engine.dialect.name)
        _remove_month(engine, month, outcome)
        outcome.action = ("archived, partitions dropped" if postgres
                          else "archived, rows deleted")
        report.months.append(outcome)
    return report
