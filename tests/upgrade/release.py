"""The previous release: which commit it is (previous_release.txt), its tree out of git
history, and the newest migration it shipped."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tests.e2e.support import ROOT

PREVIOUS_RELEASE_FILE = Path(__file__).with_name("previous_release.txt")


def previous_release() -> str:
    """The commit named on the first non-comment line of previous_release.txt."""
    for line in PREVIOUS_RELEASE_FILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped
    raise AssertionError(f"{PREVIOUS_RELEASE_FILE} names no commit")


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                          timeout=60, check=False)


def extract_release(commit: str, destination: Path) -> Path:
    """The tree of ``commit`` written into ``destination``; skips the test when this
    checkout has no git history holding it (a source archive, a shallow clone)."""
    try:
        found = _git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except FileNotFoundError:
        pytest.skip("git is not installed: the previous release comes from git history")
    if found.returncode != 0:
        pytest.skip(f"the previous release {commit} is not in this checkout's git history "
                    "(a shallow clone or a source archive): clone with history to run it")
    archive = _git("archive", "--format=tar", commit)
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def newest_migration(tree: Path) -> str:
    """The head revision of the migrations in a release's tree."""
    head = ScriptDirectory(str(tree / "rules_service" / "migrations")).get_current_head()
    assert head is not None, f"no migrations in {tree}"
    return head
