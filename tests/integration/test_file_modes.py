"""Files that hold secrets are created readable by their owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from rules_service.adapters.database import make_engine
from rules_service.adapters.migrations_runner import upgrade


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask, under which files were created world-readable (0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_the_sqlite_database_and_its_wal_and_shm_files_are_0600(
        tmp_path: Path, open_umask: None) -> None:
    """The database holds password hashes, webhook secrets and decision inputs."""
    path = tmp_path / "rules.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM principals")).scalar_one()
            wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
            assert wal.exists() and shm.exists()
            assert [mode(p) for p in (path, wal, shm)] == ["0o600"] * 3
    finally:
        engine.dispose()


def test_an_existing_database_file_is_left_as_it_is(tmp_path: Path,
                                                    open_umask: None) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert mode(path) == "0o640"
