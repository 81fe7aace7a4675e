"""The demo behind ``make run``: real principals, real proposals and sign-offs, idempotent."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from rules_service.adapters import migrations_runner
from rules_service.adapters.database import make_engine
from rules_service.bootstrap import Container
from rules_service.cli import main
from rules_service.services import governance, principals
from rules_service.services.demo import NotADemoDatabase, seed_demo
from rules_service.services.sync import sync_directory

RULESETS = Path(__file__).resolve().parents[2] / "rulesets"


def test_the_demo_makes_every_example_live_through_sign_off_by_distinct_people(
        container: Container, tmp_path: Path) -> None:
    tokens_path = tmp_path / "tokens.json"
    report = seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)

    summaries = {s.name: s for s in governance.list_rulesets(container.uow())}
    assert set(summaries) == {p.stem for p in RULESETS.glob("*.yaml")}
    for name in summaries:
        first = governance.get_version(container.uow(), name, 1)
        assert first.status == "active"
        signers = {s.principal for s in first.signoffs}
        assert first.author not in signers
        assert len(signers) == len(first.required_signoffs)
    assert not [line for line in report.lines if "not made live" in line]


def test_the_demo_leaves_one_threshold_change_pending_for_review(
        container: Container, tmp_path: Path) -> None:
    seed_demo(container.uow, container.evaluator, RULESETS, tmp_path / "tokens.json")
    pending = governance.get_version(container.uow(), "expense-approval", 2)
    assert pending.status == "pending" and pending.base_version == 1
    assert pending.definition["thresholds"]["auto_approve_limit"] == 750


def test_demo_tokens_authenticate_and_are_readable_by_the_owner_only(
        container: Container, tmp_path: Path) -> None:
    tokens_path = tmp_path / "tokens.json"
    seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)
    assert stat.S_IMODE(tokens_path.stat().st_mode) == 0o600
    tokens = json.loads(tokens_path.read_text())
    who = principals.authenticate(container.uow(), tokens["demo-automation"])
    assert who is not None and who.is_automation
    assert principals.authenticate(container.uow(), tokens["demo-admin"]).is_admin  # type: ignore[union-attr]


def test_running_the_demo_twice_changes_nothing_and_says_so(
        container: Container, tmp_path: Path) -> None:
    tokens_path = tmp_path / "tokens.json"
    seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)
    first_tokens = tokens_path.read_text()
    audit_before = _audit_trails(container)

    report = seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)

    assert report.new_principals == [] and report.changed is False
    assert report.lines[0].startswith("nothing changed")
    assert "expense-approval: version 1 active, version 2 pending" in report.lines
    assert tokens_path.read_text() == first_tokens
    assert _audit_trails(container) == audit_before


def _audit_trails(container: Container) -> dict[str, list[tuple[int | None, str, str]]]:
    return {s.name: [(e.version, e.action, e.actor)
                     for e in governance.list_audit_events(container.uow(), s.name)]
            for s in governance.list_rulesets(container.uow())}


def test_the_demo_never_signs_off_a_version_someone_else_proposed(
        container: Container, tmp_path: Path) -> None:
    tokens_path = tmp_path / "tokens.json"
    seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)
    # The maintainer syncs an edited working copy: a new version, pending review.
    edited = tmp_path / "working-copy"
    edited.mkdir()
    text = (RULESETS / "discount-approval.yaml").read_text(encoding="utf-8")
    (edited / "discount-approval.yaml").write_text(
        text.replace("description:", "description: Edited.", 1), encoding="utf-8")
    maintainer = governance.get_ruleset(container.uow(), "discount-approval") \
        .owners["maintainer"]["primary"]
    [synced] = sync_directory(container.uow(), container.evaluator, edited, actor=maintainer)
    assert synced.status == "proposed", synced

    with pytest.raises(NotADemoDatabase) as refused:
        seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)

    assert refused.value.code == "not_a_demo_database"
    assert any(f"discount-approval version {synced.version} was proposed by {maintainer}"
               in str(d) for d in refused.value.details)
    version = governance.get_version(container.uow(), "discount-approval", synced.version)
    assert version.status == "pending" and version.signoffs == ()


def test_the_demo_refuses_a_database_holding_anything_it_did_not_make(
        container: Container, tmp_path: Path) -> None:
    principals.add_principal(container.uow(), "alice", is_admin=True)
    with pytest.raises(NotADemoDatabase) as refused:
        seed_demo(container.uow, container.evaluator, RULESETS, tmp_path / "tokens.json")
    assert refused.value.details == ["principal alice is not one of the demo's"]
    assert governance.list_rulesets(container.uow()) == []
    assert not (tmp_path / "tokens.json").exists()


def test_the_demos_pending_version_is_the_example_files_yaml_with_its_comments(
        container: Container, tmp_path: Path) -> None:
    seed_demo(container.uow, container.evaluator, RULESETS, tmp_path / "tokens.json")
    pending = governance.get_version(container.uow(), "expense-approval", 2)
    original = (RULESETS / "expense-approval.yaml").read_text(encoding="utf-8")
    assert pending.content == original.replace("auto_approve_limit: 500",
                                                "auto_approve_limit: 750", 1)
    assert "# paid without review" in pending.content


def test_the_demo_command_refuses_a_foreign_database_before_migrating_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", url)
    # An older schema, holding a principal the demo did not make.
    assert main(["db", "upgrade"]) == 0
    assert main(["principals", "add", "alice", "--admin"]) == 0
    command.downgrade(migrations_runner.alembic_config(url), "-1")
    engine = make_engine(url)
    try:
        older = migrations_runner.current_revision(engine)
    finally:
        engine.dispose()
    capsys.readouterr()

    status = main(["demo", "--no-serve", "--rulesets", str(RULESETS),
                   "--tokens", str(tmp_path / "tokens.json")])

    err = capsys.readouterr().err
    assert status == 1 and "refused" in err and "principal alice" in err
    assert "Traceback" not in err
    engine = make_engine(url)
    try:
        assert migrations_runner.current_revision(engine) == older  # not even migrated
    finally:
        engine.dispose()
    assert not (tmp_path / "tokens.json").exists()


def test_the_demo_command_refuses_a_database_of_another_application(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", url)
    assert main(["demo", "--no-serve", "--rulesets", str(RULESETS),
                 "--tokens", str(tmp_path / "tokens.json")]) == 1
    assert "tables not made by rules-service: invoices" in capsys.readouterr().err


def test_every_demo_person_gets_a_password_kept_for_the_owner_only(
        container: Container, tmp_path: Path) -> None:
    from rules_service.services import accounts
    from rules_service.services.demo_people import demo_people, set_demo_passwords

    report = seed_demo(container.uow, container.evaluator, RULESETS, tmp_path / "tokens.json")
    path = tmp_path / "demo-passwords.json"
    passwords = set_demo_passwords(container.uow, report.tokens, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "demo-automation" not in passwords and "demo-admin" in passwords
    people = dict(demo_people(container.uow))
    assert {"finance-lead", "controller", "ops-oncall", "rules-dev", "demo-admin"} <= set(people)
    for name in people:
        assert accounts.sign_in_with_password(container.uow(), name, passwords[name]).name == name
    again = set_demo_passwords(container.uow, report.tokens, path)
    assert again == passwords  # a second run keeps the passwords people were told
