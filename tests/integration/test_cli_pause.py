"""``rules-service pause`` and ``resume`` on the database, as the API's people."""

from __future__ import annotations

import json
import time

import pytest

from rules_service.bootstrap import Container
from rules_service.cli import main
from rules_service.services.live import FRESHNESS_BOUND_S
from tests.integration.api_fixtures import Api
from tests.integration.test_api_pause import BASE, NAME, active

__all__ = ["active"]  # the fixture, shared


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", database_url)
    monkeypatch.delenv("RULES_SERVICE_ACTOR", raising=False)


@pytest.mark.usefixtures("active", "cli_env")
def test_pause_and_resume_from_the_command_line(api: Api, container: Container,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pause", NAME, "--reason", "fraud wave", "--as", "ops"]) == 0
    out = capsys.readouterr().out
    assert f"{NAME} is paused by ops since" in out and "fraud wave" in out
    assert api.get(BASE).get_json()["paused"]["reason"] == "fraud wave"
    time.sleep(FRESHNESS_BOUND_S)  # the app's process learns it like any other
    decision = api.post(f"{BASE}/evaluate", {"input": {"amount": 5}}).get_json()
    assert (decision["outcome"], decision["paused_outcome"]) == ("escalate", "approve")

    assert main(["pause", NAME, "--reason", "again", "--as", "biz"]) == 1
    assert "already paused by ops" in capsys.readouterr().err

    assert main(["resume", NAME, "--as", "biz-backup", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paused"] is None
    assert main(["resume", NAME, "--as", "ops"]) == 1
    assert f"ruleset {NAME} is not paused" in capsys.readouterr().err


@pytest.mark.usefixtures("active", "cli_env")
def test_the_actor_comes_from_the_environment_and_needs_authority(
        api: Api, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RULES_SERVICE_ACTOR", "dev")
    assert main(["pause", NAME, "--reason", "look"]) == 1
    assert "neither operations_owner nor business_owner" in capsys.readouterr().err
    assert api.get(BASE).get_json()["paused"] is None
    monkeypatch.setenv("RULES_SERVICE_ACTOR", "ops-backup")
    assert main(["pause", NAME, "--reason", "  "]) == 1
    assert "reason: a pause needs a reason" in capsys.readouterr().err
    assert api.get(BASE).get_json()["paused"] is None
    assert main(["pause", NAME, "--reason", "look"]) == 0
    assert api.get(BASE).get_json()["paused"]["by"] == "ops-backup"
    assert main(["pause", "nope", "--reason", "look"]) == 1
    assert "nope" in capsys.readouterr().err


@pytest.mark.usefixtures("active", "cli_env")
def test_without_a_name_the_console_user_acts_as_an_admin(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pause", NAME, "--reason", "look"]) == 0
    paused = api.get(BASE).get_json()["paused"]
    assert paused["by"].startswith("console:") and paused["reason"] == "look"
    assert main(["resume", NAME]) == 0
    assert api.get(BASE).get_json()["paused"] is None
    events = api.get(f"{BASE}/audit").get_json()["events"]
    by_console = {e["action"] for e in events if str(e.get("actor")).startswith("console:")}
    assert {"paused", "resumed"} <= by_console
