"""Pause and resume over HTTP: authority, conflicts, what a decision records while paused,
the audit and notification events, and a pause reaching another instance in time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from api import create_app
from rules_service.adapters import rollup_fold
from rules_service.adapters.orm import OutboxEventRow
from rules_service.bootstrap import Container, bootstrap
from rules_service.config import Settings
from rules_service.engine import EnginePool
from rules_service.services.live import FRESHNESS_BOUND_S
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"
REASON = "exception rate doubled overnight"


@pytest.fixture
def active(api: Api) -> None:
    """Version 1 of refunds is active: 100 or less is approved, more escalates."""
    response = api.post(f"{BASE}/versions", {"definition": definition(100)})
    assert response.status_code == 201, response.get_json()
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201


def pause(api: Api, who: str = "ops", reason: str = REASON) -> Any:
    return api.post(f"{BASE}/pause", {"reason": reason}, who=who)


def outbox_types(container: Container) -> Counter[str]:
    with container.engine.connect() as conn:
        rows = conn.execute(select(OutboxEventRow.type, func.count())
                            .group_by(OutboxEventRow.type))
        return Counter({kind: int(n) for kind, n in rows})


def test_pause_and_resume_answer_the_ruleset_and_are_409_twice(
        api: Api, active: None, clock: FakeClock) -> None:
    response = pause(api)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["name"] == NAME and body["active_version"] == 1
    assert body["paused"] == {"by": "ops", "at": clock.now.isoformat(),
                              "reason": REASON}
    assert api.get(BASE).get_json()["paused"] == body["paused"]
    again = pause(api, who="biz")
    assert again.status_code == 409
    assert error_of(again)["code"] == "already_paused"
    assert "paused by ops" in error_of(again)["message"]

    resumed = api.post(f"{BASE}/resume", who="biz-backup")
    assert resumed.status_code == 200, resumed.get_json()
    assert resumed.get_json()["paused"] is None
    assert api.get(BASE).get_json()["paused"] is None
    twice = api.post(f"{BASE}/resume", who="ops")
    assert twice.status_code == 409
    assert error_of(twice)["code"] == "not_paused"


@pytest.mark.parametrize("who", ["ops", "ops-backup", "biz", "biz-backup", "root"])
def test_operations_and_business_owners_and_admins_may_pause(api: Api, active: None,
                                                             who: str) -> None:
    assert pause(api, who=who).status_code == 200
    assert api.post(f"{BASE}/resume", who=who).status_code == 200


@pytest.mark.parametrize("who", ["dev", "appr", "appr-backup", "stranger", "bot"])
def test_anyone_else_is_403_with_the_reason(api: Api, active: None, who: str) -> None:
    response = pause(api, who=who)
    assert response.status_code == 403
    assert who in error_of(response)["message"]
    assert api.get(BASE).get_json()["paused"] is None
    assert pause(api).status_code == 200
    refused = api.post(f"{BASE}/resume", who=who)
    assert refused.status_code == 403
    assert api.get(BASE).get_json()["paused"] is not None


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": 5}])
def test_a_pause_needs_a_reason(api: Api, active: None, body: dict[str, Any]) -> None:
    response = api.post(f"{BASE}/pause", body, who="ops")
    assert response.status_code == 422
    assert [d.get("field") or d.get("place") for d in error_of(response)["details"]] \
        == ["reason"]
    assert api.get(BASE).get_json()["paused"] is None


def test_unknown_ruleset_is_404(api: Api) -> None:
    assert pause(api, who="root").status_code == 404
    assert api.post("/v1/rulesets/nope/resume").status_code == 404


def test_while_paused_every_decision_escalates_to_the_approver_and_keeps_the_rules_answer(
        api: Api, active: None) -> None:
    assert pause(api).status_code == 200
    response = api.post(f"{BASE}/evaluate", {"input": {"amount": 5}}, who="bot")
    assert response.status_code == 200
    decision = response.get_json()
    assert decision["outcome"] == "escalate"
    assert decision["paused"] is True
    assert decision["paused_outcome"] == "approve"
    assert decision["deciding_rules"] == []
    assert [f["id"] for f in decision["fired_rules"]] == ["small"]
    assert decision["escalation"]["to_role"] == "approver"

    stored = api.get(f"/v1/decisions/{decision['decision_id']}").get_json()
    assert (stored["paused"], stored["paused_outcome"], stored["paused_reason"]) \
        == (True, "approve", REASON)
    [escalation] = api.get("/v1/escalations?status=open").get_json()["escalations"]
    assert escalation["decision_id"] == decision["decision_id"]
    assert escalation["decision"]["paused_reason"] == REASON
    assert escalation["decision"]["paused_outcome"] == "approve"

    batch = api.post(f"{BASE}/evaluate-batch", {"inputs": [{"amount": 1}, {"amount": 500}]})
    assert [(d["outcome"], d["paused_outcome"]) for d in batch.get_json()["decisions"]] \
        == [("escalate", "approve"), ("escalate", "escalate")]

    assert api.post(f"{BASE}/resume", who="ops").status_code == 200
    after = api.post(f"{BASE}/evaluate", {"input": {"amount": 5}}).get_json()
    assert (after["outcome"], after["paused"], after["paused_outcome"]) \
        == ("approve", False, None)
    assert after["deciding_rules"] == ["small"]


def test_a_dry_run_says_what_the_rules_decide_and_that_the_ruleset_is_paused(
        api: Api, active: None) -> None:
    assert pause(api).status_code == 200
    dry = api.post(f"{BASE}/evaluate", {"input": {"amount": 5}, "dry_run": True}).get_json()
    assert dry["outcome"] == "approve" and dry["deciding_rules"] == ["small"]
    assert dry["paused"] is True
    assert dry["pause"]["reason"] == REASON and dry["pause"]["by"] == "ops"
    assert "approver" in dry["pause"]["message"]
    assert api.get("/v1/decisions").get_json()["decisions"] == []


def test_pause_and_resume_are_audited_and_told(api: Api, active: None,
                                               container: Container) -> None:
    assert pause(api).status_code == 200
    assert api.post(f"{BASE}/resume", who="biz").status_code == 200
    events = api.get(f"{BASE}/audit").get_json()["events"]
    paused, resumed = [e for e in events if e["action"] in ("paused", "resumed")]
    assert (paused["action"], paused["actor"], paused["comment"], paused["version"]) \
        == ("paused", "ops", REASON, 1)
    assert (resumed["action"], resumed["actor"]) == ("resumed", "biz")
    assert resumed["details"]["paused_by"] == "ops"
    told = outbox_types(container)
    assert told["ruleset.paused"] == 1 and told["ruleset.resumed"] == 1


def test_refused_pauses_tell_nobody(api: Api, active: None, container: Container) -> None:
    assert pause(api, who="stranger").status_code == 403
    assert api.post(f"{BASE}/resume", who="ops").status_code == 409
    assert outbox_types(container)["ruleset.paused"] == 0
    assert [e for e in api.get(f"{BASE}/audit").get_json()["events"]
            if e["action"] in ("paused", "resumed")] == []


def test_a_pause_landing_under_load_loses_and_doubles_nothing(
        api: Api, active: None, app: Flask, people: dict[str, str]) -> None:
    """Threads evaluate while the pause lands: each answer is either paused or decided by
    the rules, never both, and every answer is recorded exactly once."""
    answers: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    go = threading.Event()
    auth = {"Authorization": f"Bearer {people['bot']}"}

    def evaluate_many() -> None:
        with app.test_client() as client:
            go.wait()
            for _ in range(15):
                response = client.post(f"{BASE}/evaluate", json={"input": {"amount": 5}},
                                       headers=auth)
                with lock:
                    if response.status_code == 200:
                        answers.append(response.get_json())
                    else:
                        errors.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=evaluate_many) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    time.sleep(0.05)
    assert pause(api).status_code == 200
    for t in threads:
        t.join()
    assert errors == []
    assert len(answers) == 60
    for answer in answers:
        paused = (answer["outcome"], answer["paused"], answer["paused_outcome"],
                  answer["deciding_rules"])
        assert paused in (("escalate", True, "approve", []), ("approve", False, None, ["small"]))
    recorded = {d["decision_id"]: d for d in _all_decisions(api)}
    assert set(recorded) == {a["decision_id"] for a in answers}
    assert Counter(d["outcome"] for d in recorded.values()) \
        == Counter(a["outcome"] for a in answers)
    escalations = api.get("/v1/escalations?status=open").get_json()["escalations"]
    assert sorted(e["decision_id"] for e in escalations) \
        == sorted(a["decision_id"] for a in answers if a["paused"])
    after = api.post(f"{BASE}/evaluate", {"input": {"amount": 5}}, who="bot").get_json()
    assert after["paused"] is True


def _all_decisions(api: Api) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = api.get(f"/v1/decisions?limit=1000{suffix}").get_json()
        out.extend(page["decisions"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


def test_another_instance_sees_a_pause_within_the_freshness_bound(
        api: Api, active: None, database_url: str, clock: FakeClock,
        engine_pool: EnginePool, people: dict[str, str]) -> None:
    """Two apps, each with its own live state, on one database: the pause made through
    one is applied by the other within the bound, without a request to it in between."""
    other = bootstrap(Settings(database_url=database_url, sqlite_busy_timeout_s=30.0),
                      evaluator=engine_pool, clock=clock)
    try:
        client = create_app(container=other).test_client()
        auth = {"Authorization": f"Bearer {people['bot']}"}

        def decide() -> dict[str, Any]:
            response = client.post(f"{BASE}/evaluate", json={"input": {"amount": 5}},
                                   headers=auth)
            assert response.status_code == 200, response.get_data(as_text=True)
            return dict(response.get_json())

        assert decide()["paused"] is False  # warm: its snapshot is loaded
        assert pause(api).status_code == 200
        paused_at = time.monotonic()
        time.sleep(FRESHNESS_BOUND_S)
        seen = decide()
        assert seen["paused"] is True, f"not seen after {time.monotonic() - paused_at:.2f}s"
        assert api.post(f"{BASE}/resume", who="ops").status_code == 200
        time.sleep(FRESHNESS_BOUND_S)
        assert decide()["paused"] is False
        assert other.live.reloads >= 3
    finally:
        other.close()


def test_the_dashboard_counts_decisions_taken_while_paused_and_gives_the_periods(
        api: Api, active: None, clock: FakeClock, container: Container) -> None:
    assert api.post(f"{BASE}/evaluate", {"input": {"amount": 5}}).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert pause(api).status_code == 200
    for amount in (5, 500, 7):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    clock.advance(timedelta(minutes=5))
    assert api.post(f"{BASE}/resume", who="biz").status_code == 200
    for amount in (5, 9):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    rollup_fold.fold_pending(container.engine)  # what the background fold does within 2 s
    board = api.get(f"/v1/dashboard?ruleset={NAME}&since=1h").get_json()
    [entry] = board["rulesets"]
    assert entry["decisions"]["count"] == 6
    assert entry["paused"]["decisions"] == 3
    [period] = entry["paused"]["periods"]
    assert (period["by"], period["reason"], period["resumed_by"]) == ("ops", REASON, "biz")
    assert period["until"] is not None
    assert board["overall"]["paused"]["decisions"] == 3
    assert pause(api).status_code == 200  # a pause still in force runs to the window's end
    ongoing = api.get(f"/v1/dashboard?ruleset={NAME}&since=1h").get_json()["rulesets"][0]
    assert [p["until"] for p in ongoing["paused"]["periods"]] == [period["until"], None]
