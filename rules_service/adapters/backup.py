"""A consistent copy of an SQLite database while the service runs (sqlite3's online
backup API), readable by its owner only."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

BACKUP_PAGES_PER_STEP = 1024
"""Pages copied between two looks at the source: writers wait for one step at most."""


class BackupError(Exception):
    """The backup cannot be made; nothing was written."""


@dataclass(frozen=True)
class BackupReport:
    """What was copied where."""

    source: Path
    target: Path
    size_bytes: int


def sqlite_file(url: str) -> Path:
    """The file of an SQLite URL; raises BackupError for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError("'db backup' copies SQLite databases; back up PostgreSQL with "
                          "pg_dump (docs/operations.md, Backups)")
    if parsed.database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(parsed.database).expanduser()


def backup_sqlite(url: str, target: Path) -> BackupReport:
    """Copies the database of ``url`` into ``target`` (mode 0600), page by page while
    others keep writing; the copy is one self-contained file (rollback journal, not WAL).

    It is written beside ``target`` and renamed into place once checked, so ``target``
    is either absent or complete; an existing ``target`` is never overwritten.
    """
    source = sqlite_file(url)
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.exists():
        raise BackupError(f"{target} exists; give a new path")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                   dir=target.parent)  # mode 0600
    os.close(fd)
    try:
        _copy(source, Path(partial))
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return BackupReport(source, target, target.stat().st_size)


def _copy(source: Path, partial: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=BACKUP_PAGES_PER_STEP)
            dst.execute("PRAGMA journal_mode = DELETE")
            result = dst.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise BackupError(f"the copy does not check out: {result}")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the copy failed: {exc}") from exc
    finally:
        src.close()
