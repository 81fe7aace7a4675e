"""The demo behind ``make run``: real principals, real proposals and sign-offs, idempotent."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from rules_service.bootstrap import Container
from rules_service.services import governance, principals
from rules_service.services.demo import seed_demo

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


def test_running_the_demo_twice_changes_nothing(container: Container, tmp_path: Path) -> None:
    tokens_path = tmp_path / "tokens.json"
    seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)
    first_tokens = tokens_path.read_text()
    versions_before = {s.name: len(governance.list_versions(container.uow(), s.name))
                       for s in governance.list_rulesets(container.uow())}

    report = seed_demo(container.uow, container.evaluator, RULESETS, tokens_path)

    assert report.new_principals == []
    assert tokens_path.read_text() == first_tokens
    assert all("unchanged" in line for line in report.lines)
    versions_after = {s.name: len(governance.list_versions(container.uow(), s.name))
                      for s in governance.list_rulesets(container.uow())}
    assert versions_after == versions_before


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
