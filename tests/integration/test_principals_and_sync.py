"""Principals and tokens, directory sync, and the database CLI commands."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from rules_service.bootstrap import Container
from rules_service.cli import main
from rules_service.domain.errors import Conflict, NotFound, RequestInvalid, Unauthenticated
from rules_service.services import diffs, principals
from rules_service.services import governance as gov
from rules_service.services.sync import sync_directory
from tests.integration.conftest import definition

# --------------------------------------------------------------------------- principals


def test_token_authenticates_its_principal(container: Container) -> None:
    issued = principals.add_principal(container.uow(), "alice", is_admin=True)
    who = principals.authenticate(container.uow(), issued.token)
    assert who is not None and (who.name, who.is_admin, who.is_automation) == \
        ("alice", True, False)


def test_tokens_are_stored_only_as_hashes(container: Container) -> None:
    issued = principals.add_principal(container.uow(), "alice")
    with container.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
        dump = " ".join(str(r) for t in ("principals", "api_tokens")
                        for r in conn.execute(text(f"SELECT * FROM {t}")))
    assert stored == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert issued.token not in dump


@pytest.mark.parametrize("token", ["", "nonsense", "x" * 600, None])
def test_unknown_tokens_authenticate_nobody(container: Container, token: str | None) -> None:
    principals.add_principal(container.uow(), "alice")
    assert principals.authenticate(container.uow(), token) is None


def test_revoking_refuses_every_token_until_a_new_one_is_issued(container: Container) -> None:
    first = principals.add_principal(container.uow(), "alice").token
    second = principals.issue_token(container.uow(), "alice").token
    principals.revoke_principal(container.uow(), "alice")
    assert principals.authenticate(container.uow(), first) is None
    assert principals.authenticate(container.uow(), second) is None
    third = principals.issue_token(container.uow(), "alice").token
    assert principals.authenticate(container.uow(), third) is not None
    assert principals.authenticate(container.uow(), first) is None


def test_principal_names_are_unique(container: Container) -> None:
    principals.add_principal(container.uow(), "alice")
    with pytest.raises(Conflict) as info:
        principals.add_principal(container.uow(), "alice", is_admin=True)
    assert info.value.code == "principal_exists"


def test_bad_principal_requests_name_every_problem(container: Container) -> None:
    with pytest.raises(RequestInvalid) as info:
        principals.add_principal(container.uow(), "bad name", is_admin=True,
                                 is_automation=True)
    assert [p.place for p in info.value.problems] == ["name", "automation"]
    with pytest.raises(NotFound):
        principals.revoke_principal(container.uow(), "ghost")


# --------------------------------------------------------------------------- sync


def _files(tmp_path: Path, limit: int = 100) -> None:
    (tmp_path / "refunds.yaml").write_text(yaml.safe_dump(definition(limit)), encoding="utf-8")
    other = definition(limit, name="credits", title="Credits")
    (tmp_path / "credits.json").write_text(json.dumps(other), encoding="utf-8")
    (tmp_path / "README.md").write_text("not a ruleset", encoding="utf-8")


OWNERS = ("biz", "biz-backup", "ops", "ops-backup", "appr", "appr-backup", "dev",
          "dev-backup")


def _owners(container: Container) -> None:
    """The owners the test rulesets name, so proposals of them are accepted."""
    for name in OWNERS:
        principals.add_principal(container.uow(), name)


def test_sync_proposes_changed_files_and_skips_unchanged(container: Container,
                                                         tmp_path: Path) -> None:
    principals.add_principal(container.uow(), "root", is_admin=True)
    _owners(container)
    _files(tmp_path)
    first = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root")
    assert [(Path(r.path).name, r.status, r.version) for r in first] == [
        ("credits.json", "proposed", 1), ("refunds.yaml", "proposed", 1)]
    again = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root")
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    (tmp_path / "refunds.yaml").write_text(yaml.safe_dump(definition(150)), encoding="utf-8")
    third = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root")
    assert [(r.ruleset, r.status, r.version) for r in third] == [
        ("credits", "unchanged", 1), ("refunds", "proposed", 2)]
    assert gov.get_version(container.uow(), "refunds", 2).note == "synced from refunds.yaml"


def test_sync_reports_invalid_files_and_syncs_the_rest(container: Container,
                                                       tmp_path: Path) -> None:
    principals.add_principal(container.uow(), "root", is_admin=True)
    _owners(container)
    _files(tmp_path)
    broken = definition(name="broken")
    broken["rules"][0]["when"] = "amount >"
    broken["default"] = "perhaps"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    results = {Path(r.path).name: r for r in sync_directory(
        container.uow(), container.evaluator, tmp_path, actor="root")}
    assert results["broken.yaml"].status == "invalid"
    assert len(results["broken.yaml"].problems) >= 2
    assert any("rules[0].when" in p for p in results["broken.yaml"].problems)
    assert results["refunds.yaml"].status == results["credits.json"].status == "proposed"
    assert {s.name for s in gov.list_rulesets(container.uow())} == {"credits", "refunds"}


def test_sync_reports_refusals_per_file(container: Container, tmp_path: Path) -> None:
    principals.add_principal(container.uow(), "dev")
    _files(tmp_path)
    results = sync_directory(container.uow(), container.evaluator, tmp_path, actor="dev")
    assert {(r.status, r.code) for r in results} == {("refused", "forbidden")}


def test_sync_as_unknown_principal_fails_once(container: Container, tmp_path: Path) -> None:
    _files(tmp_path)
    with pytest.raises(Unauthenticated):
        sync_directory(container.uow(), container.evaluator, tmp_path, actor="ghost")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty SQLite database file for the CLI (the CLI reads its URL from the env)."""
    url = f"sqlite:///{tmp_path / 'cli' / 'rs.db'}"
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", url)
    return url


def test_cli_upgrades_then_adds_principal_with_token_last(
        cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0  # idempotent
    assert main(["principals", "add", "alice", "--admin"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings
    c = bootstrap(Settings(database_url=cli_db))
    try:
        who = principals.authenticate(c.uow(), token)
        assert who is not None and who.is_admin
        assert main(["principals", "revoke", "alice"]) == 0
        assert principals.authenticate(c.uow(), token) is None
    finally:
        c.close()


def test_cli_errors_are_plain_messages(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["principals", "add", "alice"]) == 1  # not migrated yet
    err = capsys.readouterr().err
    assert err.startswith("error: database error") and "Traceback" not in err
    assert main(["db", "upgrade"]) == 0
    assert main(["principals", "revoke", "ghost"]) == 1
    assert capsys.readouterr().err.strip() == "error: no principal named ghost"
    assert main(["principals", "add", "x", "--admin", "--automation"]) == 1
    assert "cannot also be an admin" in capsys.readouterr().err


def test_cli_sync_proposes_and_exits_1_on_an_invalid_file(
        cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["db", "upgrade"])
    for name in ("root", *OWNERS):
        main(["principals", "add", name, *(["--admin"] if name == "root" else [])])
    files = tmp_path / "rulesets"
    files.mkdir()
    _files(files)
    assert main(["sync", str(files), "--as", "root"]) == 0
    out = capsys.readouterr().out
    assert "refunds.yaml: proposed (refunds version 1)" in out
    (files / "bad.yaml").write_text("name: [unclosed", encoding="utf-8")
    assert main(["sync", str(files), "--as", "root", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {f["status"] for f in report["files"]} == {"invalid", "unchanged"}
    assert main(["sync", str(files), "--as", "ghost"]) == 1
    assert "no such principal" in capsys.readouterr().err


def test_cli_validate_warns_about_owners_the_database_does_not_know(
        cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["db", "upgrade"])
    for name in OWNERS[:-1]:
        main(["principals", "add", name])
    path = tmp_path / "refunds.yaml"
    path.write_text(yaml.safe_dump(definition()), encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "owners.maintainer.backup: dev-backup is not a principal" in err
    assert "warning" in err and "biz" not in err.replace("dev-backup", "")


def test_sync_refuses_a_working_copy_equal_to_an_older_version_unless_reverting(
        container: Container, tmp_path: Path) -> None:
    principals.add_principal(container.uow(), "root", is_admin=True)
    _owners(container)
    path = tmp_path / "refunds.yaml"
    for limit in (100, 200, 300):  # versions 1, 2, 3, each made active
        path.write_text(yaml.safe_dump(definition(limit)), encoding="utf-8")
        [result] = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root")
        for who in ("biz", "appr"):
            gov.sign_off(container.uow(), "refunds", result.version or 0, decision="approve",
                         actor=who)
    path.write_text(yaml.safe_dump(definition(100)), encoding="utf-8")  # the old copy

    [refused] = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root")
    assert (refused.status, refused.code, refused.version) == ("refused", "older_version", 1)
    assert "versions 2 to 3" in refused.message and "--revert" in refused.message
    assert len(gov.list_versions(container.uow(), "refunds")) == 3

    [reverted] = sync_directory(container.uow(), container.evaluator, tmp_path, actor="root",
                                revert=True)
    assert (reverted.status, reverted.version) == ("proposed", 4)
    diff = diffs.diff_versions(container.uow(), container.evaluator, "refunds")
    assert [(u.version, [c["summary"] for c in u.changes]) for u in diff.undoes] == [
        (3, ["Raised limit from 200 to 300"]), (2, ["Raised limit from 100 to 200"])]


def test_cli_sync_names_the_stale_file_and_exits_1(
        cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["db", "upgrade"])
    for name in ("root", *OWNERS):
        main(["principals", "add", name, *(["--admin"] if name == "root" else [])])
    files = tmp_path / "rulesets"
    files.mkdir()
    path = files / "refunds.yaml"
    path.write_text(yaml.safe_dump(definition(100)), encoding="utf-8")
    assert main(["sync", str(files), "--as", "root"]) == 0
    path.write_text(yaml.safe_dump(definition(200)), encoding="utf-8")
    assert main(["sync", str(files), "--as", "root"]) == 0
    path.write_text(yaml.safe_dump(definition(100)), encoding="utf-8")
    capsys.readouterr()
    assert main(["sync", str(files), "--as", "root"]) == 1
    assert f"{path}: refused (refunds version 1)" in capsys.readouterr().out


def test_cli_sets_a_password_from_one_line_of_stdin_and_refuses_automations(
        cli_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rules_service.services import accounts

    main(["db", "upgrade"])
    main(["principals", "add", "alice"])
    main(["principals", "add", "robot", "--automation"])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["principals", "password", "alice"]) == 0
    assert "password set for alice" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["principals", "password", "robot"]) == 1
    assert "automations cannot sign in" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["principals", "password", "alice"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings
    c = bootstrap(Settings(database_url=cli_db))
    try:
        signed = accounts.sign_in_with_password(c.uow(), "alice", "a long enough secret")
        assert signed.name == "alice"
    finally:
        c.close()
