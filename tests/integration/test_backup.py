"""Backups that restore: SQLite's `db backup` and PostgreSQL's pg_dump/pg_restore, each
served from the restored database."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from api import create_app
from rules_service.bootstrap import Container, bootstrap
from rules_service.cli import main
from rules_service.config import Settings
from rules_service.engine import EnginePool
from rules_service.services import principals
from tests.conftest import database_kind, throwaway_database
from tests.integration.api_fixtures import Api
from tests.integration.test_api_evaluation import BASE, EVALUATE, activate


@pytest.fixture
def recorded(api: Api) -> str:
    """An active version and one recorded decision; its id."""
    activate(api)
    response = api.post(EVALUATE, {"input": {"amount": 5}}, who="bot")
    assert response.status_code == 200
    return str(response.get_json()["decision_id"])


def _serve_checks(url: str, pool: EnginePool, token: str, decision_id: str) -> None:
    """The restored database serves: ready, the decision is there, evaluate records."""
    container = bootstrap(Settings(database_url=url), evaluator=pool)
    try:
        client = create_app(container=container).test_client()
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/decisions/{decision_id}", headers=auth).status_code == 200
        again = client.post(EVALUATE, json={"input": {"amount": 7}}, headers=auth)
        assert again.status_code == 200, again.get_json()
        assert client.get(BASE, headers=auth).get_json()["active_version"] == 1
    finally:
        container.close()


@pytest.mark.skipif(database_kind() != "sqlite", reason="SQLite's online backup")
def test_sqlite_backup_is_private_and_serves_with_what_it_held(
        api: Api, recorded: str, database_url: str, engine_pool: EnginePool,
        container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    target = tmp_path / "copy" / "backup.db"
    target.parent.mkdir()
    assert main(["db", "backup", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["backup.db"]
    assert "readable by you only" in capsys.readouterr().out
    # Revoked after the backup: the restored copy knows nothing of it.
    principals.revoke_principal(container.uow(), "bot")
    restored = tmp_path / "restored.db"
    shutil.copy(target, restored)
    _serve_checks(f"sqlite:///{restored}", engine_pool, api.tokens["bot"], recorded)


@pytest.mark.skipif(database_kind() != "sqlite", reason="SQLite's online backup")
def test_sqlite_backup_refuses_to_overwrite_and_says_why(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    existing = tmp_path / "there.db"
    existing.write_text("keep me")
    assert main(["db", "backup", str(existing)]) == 1
    assert existing.read_text() == "keep me"
    assert main(["db", "backup", str(tmp_path / "nowhere" / "x.db")]) == 1
    err = capsys.readouterr().err
    assert "exists; give a new path" in err and "is not a directory" in err
    assert err.count("error:") == 2


@pytest.mark.skipif(database_kind() != "postgresql", reason="pg_dump and pg_restore")
def test_backup_refused_on_postgresql_with_the_way_to_do_it(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: Any) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    assert main(["db", "backup", str(tmp_path / "x.db")]) == 1
    assert "pg_dump" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


@pytest.fixture
def empty_postgres(tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database."""
    with throwaway_database(tmp_path) as url:
        yield url


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.skipif(database_kind() != "postgresql", reason="pg_dump and pg_restore")
def test_pg_dump_and_restore_serve_with_what_the_dump_held(
        api: Api, recorded: str, database_url: str, empty_postgres: str,
        engine_pool: EnginePool, container: Container, tmp_path: Path) -> None:
    dump = tmp_path / "rules-service.dump"
    # The documented procedure (docs/operations.md, Backups).
    subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}",
                    _libpq(database_url)], check=True, env={**os.environ, "PGTZ": "UTC"})
    os.chmod(dump, 0o600)
    principals.revoke_principal(container.uow(), "bot")
    subprocess.run(["pg_restore", "--no-owner", "--exit-on-error",
                    f"--dbname={_libpq(empty_postgres)}", str(dump)], check=True)
    _serve_checks(empty_postgres, engine_pool, api.tokens["bot"], recorded)
