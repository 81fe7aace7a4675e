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
   the counts, the file's sha256 (``sha256sum`` prints the same) and the seals that list
   the month's decisions (``services.seals``: number, hash, Merkle root, item count), so
   ``rules-service audit verify --archive DIR`` still checks each removed decision
   against its seal.
3. Only then is the month removed, after checking in the removing transaction that it
   still holds the rows archived and no open escalation: on PostgreSQL its partitions of
   ``decisions`` and ``escalations`` are detached and dropped; on SQLite its decisions
   are deleted in batches, each batch with their keys and escalations (whose steps go by
   the foreign key's cascade). The SQL of all this is in ``adapters.retention_store``.

The rollups (``decision_rollups*``, ``decision_totals``, ``escalation_rollups*``) are not
touched (a decision still waiting to be folded is counted from its own ``rollup_pending``
row, which retention leaves alone), so the dashboard and /metrics keep every figure they
take from them for the removed months. The dashboard's breach count is the exception: it
counts escalations rows (``notifications.breaches_by_ruleset``), so breaches of a removed
month are no longer counted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from rules_service.adapters.partitions import Month
from rules_service.adapters.retention_store import (
    Counts,
    Database,
    RetentionStore,
    prune_notifications,
)
from rules_service.adapters.seal_store import SealStore
from rules_service.services.views import iso


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
    notifications: tuple[int, int] = (0, 0)
    dry_run: bool = False

    def lines(self) -> list[str]:
        """The report, for people."""
        out = [f"retention: months that ended before {iso(self.cutoff)}"]
        out += [m.line() for m in self.months] or ["nothing old enough"]
        events, deliveries = self.notifications
        verb = "would be removed" if self.dry_run else "removed"
        out.append(f"notifications: {events} events and {deliveries} deliveries older "
                   f"than the cutoff, all delivered or dead, {verb}")
        if self.old_rows_in_default:
            out.append(f"{self.old_rows_in_default} old decisions are in the default "
                       f"partition: run 'rules-service db partitions' first")
        return out


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


def _private_open(path: Path) -> BinaryIO:
    """Opens ``path`` for writing, created (or truncated) readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an earlier file of that name keeps its mode otherwise
    return os.fdopen(descriptor, "wb")


def archive_month(engine: Database, month: Month, directory: Path, stamp: str,
                  database: str) -> MonthOutcome:
    """Writes and verifies the month's archive and manifest, from one snapshot; removes
    nothing. The outcome says how many decisions and escalations it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    base = f"decisions-{month.label}-{stamp}"
    final, partial = directory / f"{base}.jsonl.gz", directory / f"{base}.jsonl.gz.partial"
    with RetentionStore(engine).snapshot(month) as ((decisions, escalations, _), lines):
        written = 0
        # mtime=0: the same rows make the same bytes, so the sha256 is reproducible.
        with _private_open(partial) as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                      mtime=0) as zipped:
            for record in lines:
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
        "seals": [{"seal": s.number, "hash": s.hash, "root": s.root, "items": s.items}
                  for s in SealStore(engine).covering(month.start, month.end)],
    }
    manifest_path = directory / f"{base}.manifest.json"
    with _private_open(manifest_path) as out:
        out.write((json.dumps(manifest, indent=2) + "\n").encode())
    _fsync(manifest_path)
    return MonthOutcome(month.label, "archived", decisions, escalations, str(final), digest)


def _remove_month(store: RetentionStore, month: Month, archived: MonthOutcome) -> None:
    """Removes the month, if it still holds exactly what was archived and nothing open."""

    def unchanged(counts: Counts) -> None:
        decisions, _, still_open = counts
        if decisions != archived.decisions or still_open:
            raise RetentionError(
                f"{month.label} changed after it was archived ({decisions} decisions now, "
                f"{still_open} open escalations): nothing removed")

    store.remove_month(month, unchanged)


def apply_retention(engine: Database, *, older_than: timedelta, archive_dir: Path,
                    now: datetime, dry_run: bool = False) -> RetentionReport:
    """Archives, verifies and removes every month that ended before ``now - older_than``
    (see the module docstring). A month whose archive fails is not removed and stops the
    run (RetentionError); months already done stay done."""
    cutoff = now - older_than
    report = RetentionReport(cutoff)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    store = RetentionStore(engine)
    survey = store.survey(cutoff)
    report.old_rows_in_default = survey.old_rows_in_default
    for month in survey.months:
        decisions, escalations, still_open = survey.counts[month]
        if still_open:
            report.months.append(MonthOutcome(month.label, "kept", decisions, escalations,
                                              open_escalations=still_open))
            continue
        postgres = store.drops_partitions
        if decisions == 0 and escalations == 0:
            if not postgres:
                continue  # nothing stored for that month, nothing to do
            if not dry_run:  # an empty partition: nothing to archive
                _remove_month(store, month, MonthOutcome(month.label, "empty"))
            report.months.append(MonthOutcome(month.label, "empty, partitions dropped"
                                              if not dry_run else "empty, would be dropped"))
            continue
        if dry_run:
            report.months.append(MonthOutcome(month.label, "would be archived and removed",
                                              decisions, escalations))
            continue
        outcome = archive_month(engine, month, archive_dir, stamp, store.dialect)
        _remove_month(store, month, outcome)
        outcome.action = ("archived, partitions dropped" if postgres
                          else "archived, rows deleted")
        report.months.append(outcome)
    report.dry_run = dry_run
    report.notifications = prune_notifications(engine, cutoff, dry_run=dry_run)
    return report
