"""Evaluate, evaluate-batch, decisions and escalations over HTTP."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from api import create_app
from rules_service.bootstrap import Container
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"
EVALUATE = f"{BASE}/evaluate"
BATCH = f"{BASE}/evaluate-batch"


def activate(api: Api, limit: int = 100, who: str = "root") -> int:
    response = api.post(f"{BASE}/versions", {"definition": definition(limit)}, who=who)
    assert response.status_code == 201, response.get_json()
    number = int(response.get_json()["version"])
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201
    return number


@pytest.fixture
def active(api: Api) -> None:
    """Version 1 of the refunds ruleset is active (limit 100, escalate above it)."""
    activate(api)


def all_decisions(api: Api, query: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = api.get(f"/v1/decisions?limit=1000{query}{suffix}").get_json()
        out.extend(page["decisions"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


# --------------------------------------------------------------------------- evaluate


@pytest.mark.usefixtures("active")
def test_decision_is_recorded_before_the_response(api: Api, clock: FakeClock) -> None:
    response = api.post(EVALUATE, {"input": {"amount": 40}}, who="bot")
    assert response.status_code == 200
    decision = response.get_json()
    assert decision["outcome"] == "approve" and decision["version"] == 1
    assert decision["fired_rules"] == [{"id": "small", "outcome": "approve",
                                        "reason": decision["fired_rules"][0]["reason"]}]
    assert decision["deciding_rules"] == ["small"]
    assert decision["escalation"] is None
    assert (decision["fallback"], decision["fallback_reason"]) == (False, None)
    assert decision["evaluated_at"] == clock.now.isoformat()
    assert isinstance(decision["duration_ms"], float)
    record = api.get(f"/v1/decisions/{decision['decision_id']}", who="stranger").get_json()
    assert record["input"] == {"amount": 40}
    assert (record["caller"], record["idempotency_key"]) == ("bot", None)
    assert {k: record[k] for k in decision} == decision


@pytest.mark.usefixtures("active")
def test_escalate_outcome_opens_an_escalation_due_by_the_runbook_target(
        api: Api, clock: FakeClock) -> None:
    decision = api.post(EVALUATE, {"input": {"amount": 500}}, who="bot").get_json()
    assert decision["outcome"] == "escalate" and decision["deciding_rules"] == []
    escalation = decision["escalation"]
    assert escalation["to_role"] == "approver"
    assert escalation["due_at"] == (clock.now + timedelta(hours=4)).isoformat()
    [listed] = api.get("/v1/escalations?status=open").get_json()["escalations"]
    assert (listed["id"], listed["decision_id"], listed["overdue"]) == \
        (escalation["id"], decision["decision_id"], False)


def test_unknown_ruleset_is_404(api: Api) -> None:
    response = api.post("/v1/rulesets/nope/evaluate", {"input": {"amount": 1}})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_ruleset_without_active_version_is_409(api: Api) -> None:
    api.post(f"{BASE}/versions", {"definition": definition()})
    response = api.post(EVALUATE, {"input": {"amount": 1}})
    assert response.status_code == 409
    assert error_of(response)["code"] == "no_active_version"


@pytest.mark.usefixtures("active")
def test_input_breaking_the_schema_is_422_naming_every_field(api: Api) -> None:
    response = api.post(EVALUATE, {"input": {"amount": -3, "colour": "red"}})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "input_invalid"
    assert {d["place"] for d in error["details"]} == {"input.amount", "input.colour"}
    missing = api.post(EVALUATE, {"input": {}})
    assert [d["place"] for d in error_of(missing)["details"]] == ["input.amount"]
    assert all_decisions(api) == []


@pytest.mark.usefixtures("active")
def test_dry_run_decides_without_recording(api: Api) -> None:
    response = api.post(EVALUATE, {"input": {"amount": 500}, "dry_run": True})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["decision_id"], body["dry_run"], body["outcome"]) == (None, True, "escalate")
    assert body["escalation"]["id"] is None and body["escalation"]["due_at"]
    assert all_decisions(api) == []
    assert api.get("/v1/escalations").get_json() == {"escalations": []}


@pytest.mark.usefixtures("active")
def test_a_pinned_version_decides_even_after_it_is_superseded(api: Api) -> None:
    activate(api, limit=1000, who="dev")
    assert api.post(EVALUATE, {"input": {"amount": 500}}).get_json()["outcome"] == "approve"
    pinned = api.post(EVALUATE, {"input": {"amount": 500}, "version": 1}).get_json()
    assert (pinned["version"], pinned["outcome"]) == (1, "escalate")


@pytest.mark.usefixtures("active")
def test_a_pending_version_can_be_tried_but_never_records(api: Api) -> None:
    api.post(f"{BASE}/versions", {"definition": definition(1000)}, who="dev")
    refused = api.post(EVALUATE, {"input": {"amount": 500}, "version": 2})
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "version_not_live"
    tried = api.post(EVALUATE, {"input": {"amount": 500}, "version": 2, "dry_run": True})
    assert (tried.status_code, tried.get_json()["outcome"]) == (200, "approve")
    assert api.post(EVALUATE, {"input": {"amount": 1}, "version": 9}).status_code == 404


# --------------------------------------------------------------------------- idempotency


@pytest.mark.usefixtures("active")
def test_same_key_and_request_returns_the_first_decision(api: Api) -> None:
    key = {"Idempotency-Key": "order-17"}
    first = api.post(EVALUATE, {"input": {"amount": 500}}, who="bot", headers=key)
    again = api.post(EVALUATE, {"input": {"amount": 500}}, who="bot", headers=key)
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert (first.headers["Idempotent-Replayed"], again.headers["Idempotent-Replayed"]) == \
        ("false", "true")
    assert len(all_decisions(api)) == 1
    assert len(api.get("/v1/escalations").get_json()["escalations"]) == 1
    record = api.get(f"/v1/decisions/{first.get_json()['decision_id']}").get_json()
    assert record["idempotency_key"] == "order-17"


@pytest.mark.usefixtures("active")
def test_same_key_with_a_different_input_is_409(api: Api) -> None:
    key = {"Idempotency-Key": "order-18"}
    api.post(EVALUATE, {"input": {"amount": 5}}, who="bot", headers=key)
    response = api.post(EVALUATE, {"input": {"amount": 6}}, who="bot", headers=key)
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_conflict"
    assert len(all_decisions(api)) == 1


@pytest.mark.usefixtures("active")
def test_keys_belong_to_their_caller(api: Api) -> None:
    key = {"Idempotency-Key": "shared"}
    mine = api.post(EVALUATE, {"input": {"amount": 5}}, who="bot", headers=key).get_json()
    theirs = api.post(EVALUATE, {"input": {"amount": 5}}, who="dev", headers=key).get_json()
    assert mine["decision_id"] != theirs["decision_id"]


@pytest.mark.usefixtures("active")
def test_unusable_idempotency_keys_are_422(api: Api) -> None:
    for key in ("   ", "k" * 201):
        response = api.post(EVALUATE, {"input": {"amount": 5}}, headers={"Idempotency-Key": key})
        assert response.status_code == 422, key


@pytest.mark.usefixtures("active")
def test_concurrent_retries_record_one_decision(app: Flask, api: Api) -> None:
    headers = api.headers("bot", {"Idempotency-Key": "retry-storm"})
    start = threading.Barrier(8)
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def retry() -> None:
        with app.test_client() as client:
            start.wait()
            with client.post(EVALUATE, json={"input": {"amount": 500}},
                             headers=headers) as response, lock:
                results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [status for status, _ in results] == [200] * 8, results
    assert len({body["decision_id"] for _, body in results}) == 1
    assert len(all_decisions(api)) == 1
    assert len(api.get("/v1/escalations").get_json()["escalations"]) == 1


# --------------------------------------------------------------------------- batch


@pytest.mark.usefixtures("active")
def test_batch_decides_and_records_every_input_in_order(api: Api) -> None:
    amounts = [1, 500, 50, 100001]
    response = api.post(BATCH, {"inputs": [{"amount": a} for a in amounts]}, who="bot")
    assert response.status_code == 200
    decisions = response.get_json()["decisions"]
    assert [d["outcome"] for d in decisions] == ["approve", "escalate", "approve", "escalate"]
    assert len({d["decision_id"] for d in decisions}) == 4
    recorded = {d["decision_id"]: d for d in all_decisions(api)}
    assert [recorded[d["decision_id"]]["input"]["amount"] for d in decisions] == amounts
    assert len(api.get("/v1/escalations").get_json()["escalations"]) == 2


@pytest.mark.usefixtures("active")
def test_one_bad_input_fails_the_batch_naming_every_problem(api: Api) -> None:
    inputs = [{"amount": 1}, {"amount": "x"}, {}, {"amount": 2, "extra": True}]
    response = api.post(BATCH, {"inputs": inputs})
    assert response.status_code == 422
    places = {d["place"] for d in error_of(response)["details"]}
    assert places == {"inputs[1].amount", "inputs[2].amount", "inputs[3].extra"}
    assert all_decisions(api) == []


@pytest.mark.usefixtures("active")
def test_batch_size_is_limited(api: Api) -> None:
    assert api.post(BATCH, {"inputs": []}).status_code == 422
    too_many = api.post(BATCH, {"inputs": [{"amount": 1}] * 1001})
    assert too_many.status_code == 422
    assert error_of(too_many)["details"][0]["place"] == "inputs"
    assert api.post(BATCH, {"inputs": [{"amount": 1}] * 1000}).status_code == 200
    assert api.post(BATCH, {"inputs": [5, "x"]}).status_code == 422


@pytest.mark.parametrize("limit", [3, 1500])
def test_batch_limit_follows_the_setting_both_ways(container: Container,
                                                  people: dict[str, str], limit: int) -> None:
    """RULES_SERVICE_BATCH_LIMIT lowers and raises the limit, and the spec says which."""
    container.settings = replace(container.settings, batch_limit=limit)
    with create_app(container=container).test_client() as client:
        api = Api(client, people)
        activate(api)
        body = api.post(BATCH, {"inputs": [{"amount": 1}] * limit, "dry_run": True})
        assert body.status_code == 200, body.get_json()
        assert len(body.get_json()["decisions"]) == limit
        over = api.post(BATCH, {"inputs": [{"amount": 1}] * (limit + 1)})
        assert over.status_code == 422
        [detail] = error_of(over)["details"]
        assert detail["place"] == "inputs" and f"at most {limit}" in detail["message"]
        spec = api.get("/openapi.json").get_json()
    inputs = spec["components"]["schemas"]["EvaluateBatchRequest"]["properties"]["inputs"]
    assert inputs["maxItems"] == limit


@pytest.mark.usefixtures("active")
def test_batch_dry_run_records_nothing(api: Api) -> None:
    body = api.post(BATCH, {"inputs": [{"amount": 1}, {"amount": 500}], "dry_run": True})
    assert [d["decision_id"] for d in body.get_json()["decisions"]] == [None, None]
    assert all_decisions(api) == []


def test_batch_on_unknown_ruleset_or_no_active_version(api: Api) -> None:
    assert api.post("/v1/rulesets/nope/evaluate-batch",
                    {"inputs": [{"amount": 1}]}).status_code == 404
    api.post(f"{BASE}/versions", {"definition": definition()})
    assert api.post(BATCH, {"inputs": [{"amount": 1}]}).status_code == 409


# --------------------------------------------------------------------------- decisions


@pytest.mark.usefixtures("active")
def test_decisions_page_by_a_stable_cursor(api: Api, clock: FakeClock) -> None:
    # Several decisions share a timestamp: the cursor must still never skip or repeat one.
    ids = []
    for i in range(7):
        if i % 3 == 0:
            clock.advance(timedelta(seconds=1))
        ids.append(api.post(EVALUATE, {"input": {"amount": i}}).get_json()["decision_id"])
    seen, cursor, pages = [], None, 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = api.get(f"/v1/decisions?limit=2{suffix}").get_json()
        seen += [d["decision_id"] for d in page["decisions"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    times = [d["evaluated_at"] for d in all_decisions(api)]
    assert times == sorted(times, reverse=True)


@pytest.mark.usefixtures("active")
def test_decisions_filter_by_ruleset_outcome_and_time(api: Api, clock: FakeClock) -> None:
    start = clock.now
    api.post(EVALUATE, {"input": {"amount": 1}})
    clock.advance(timedelta(hours=1))
    api.post(EVALUATE, {"input": {"amount": 500}})
    assert [d["outcome"] for d in all_decisions(api, "&outcome=escalate")] == ["escalate"]
    assert len(all_decisions(api, f"&ruleset={NAME}")) == 2
    later = (start + timedelta(minutes=30)).isoformat()
    assert [d["outcome"] for d in all_decisions(api, f"&since={later}")] == ["escalate"]
    assert [d["outcome"] for d in all_decisions(api, f"&until={later}")] == ["approve"]
    naive = (start + timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    assert len(all_decisions(api, f"&since={naive}")) == 1


def test_decision_queries_are_validated(api: Api) -> None:
    response = api.get("/v1/decisions?limit=0&outcome=maybe&since=soon")
    assert response.status_code == 422
    assert {d["place"] for d in error_of(response)["details"]} == {"limit", "outcome", "since"}
    assert api.get("/v1/decisions?cursor=not-a-cursor").status_code == 422
    window = api.get("/v1/decisions?since=2024-02-01&until=2024-01-01")
    assert [d["place"] for d in error_of(window)["details"]] == ["until"]
    assert api.get("/v1/decisions?ruleset=nope").status_code == 404
    assert api.get("/v1/decisions/no-such-id").status_code == 404


# --------------------------------------------------------------------------- escalations


def escalate(api: Api, amount: int = 500) -> dict[str, Any]:
    decision = api.post(EVALUATE, {"input": {"amount": amount}}, who="bot").get_json()
    escalation: dict[str, Any] = decision["escalation"]
    return escalation


@pytest.mark.usefixtures("active")
def test_overdue_escalations_are_listed(api: Api, clock: FakeClock) -> None:
    first = escalate(api)
    clock.advance(timedelta(hours=3))
    escalate(api)
    assert api.get("/v1/escalations?overdue=true").get_json() == {"escalations": []}
    clock.advance(timedelta(hours=2))
    [overdue] = api.get("/v1/escalations?overdue=true").get_json()["escalations"]
    assert (overdue["id"], overdue["overdue"]) == (first["id"], True)
    assert len(api.get(f"/v1/escalations?ruleset={NAME}&status=open").get_json()
               ["escalations"]) == 2


@pytest.mark.parametrize("who", ["appr", "appr-backup", "root"])
@pytest.mark.usefixtures("active")
def test_approver_or_admin_resolves_an_escalation(api: Api, who: str) -> None:
    escalation = escalate(api)
    response = api.post(f"/v1/escalations/{escalation['id']}/resolve",
                        {"resolution": "approve", "comment": "checked"}, who=who)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["resolution"], body["resolved_by"]) == \
        ("resolved", "approve", who)
    assert api.get("/v1/escalations?status=open").get_json() == {"escalations": []}
    again = api.post(f"/v1/escalations/{escalation['id']}/resolve", {"resolution": "reject"},
                     who=who)
    assert again.status_code == 409
    assert error_of(again)["code"] == "already_resolved"


@pytest.mark.parametrize("who", ["biz", "ops", "dev", "stranger", "bot"])
@pytest.mark.usefixtures("active")
def test_others_cannot_resolve_an_escalation(api: Api, who: str) -> None:
    escalation = escalate(api)
    response = api.post(f"/v1/escalations/{escalation['id']}/resolve",
                        {"resolution": "approve"}, who=who)
    assert response.status_code == 403
    assert error_of(response)["message"]


@pytest.mark.usefixtures("active")
def test_resolution_is_validated_and_unknown_escalations_are_404(api: Api) -> None:
    escalation = escalate(api)
    bad = api.post(f"/v1/escalations/{escalation['id']}/resolve", {"resolution": "later"})
    assert bad.status_code == 422
    assert error_of(bad)["details"][0]["place"] == "resolution"
    assert api.post("/v1/escalations/nope/resolve", {"resolution": "approve"}).status_code \
        == 404
    assert api.get("/v1/escalations?status=closed&overdue=maybe").status_code == 422


def _with_ops_escalation(api: Api) -> None:
    """Refunds above 1000 escalate to the operations owner, with a reason."""
    rules = [*definition()["rules"],
             {"id": "big", "when": "amount > 1000", "then": "escalate",
              "escalate_to": "operations_owner", "reason": "Big refunds need operations."}]
    response = api.post(f"{BASE}/versions", {"definition": definition(rules=rules)})
    assert response.status_code == 201, response.get_json()
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201


@pytest.mark.parametrize("who", ["ops", "ops-backup", "appr", "root"])
def test_the_role_an_escalation_is_addressed_to_can_resolve_it(api: Api, who: str) -> None:
    _with_ops_escalation(api)
    decision = api.post(f"{BASE}/evaluate", {"input": {"amount": 5000}}).get_json()
    assert decision["escalation"]["to_role"] == "operations_owner"
    response = api.post(f"/v1/escalations/{decision['escalation']['id']}/resolve",
                        {"resolution": "approve"}, who=who)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resolved_by"] == who


def test_an_escalation_addressed_to_operations_is_not_for_the_business_owner(
        api: Api) -> None:
    _with_ops_escalation(api)
    decision = api.post(f"{BASE}/evaluate", {"input": {"amount": 5000}}).get_json()
    response = api.post(f"/v1/escalations/{decision['escalation']['id']}/resolve",
                        {"resolution": "approve"}, who="biz")
    assert response.status_code == 403
    assert "operations_owner" in error_of(response)["message"]


def test_the_escalation_list_shows_the_input_and_the_deciding_rules_with_reasons(
        api: Api) -> None:
    _with_ops_escalation(api)
    api.post(f"{BASE}/evaluate", {"input": {"amount": 5000}})
    [listed] = api.get("/v1/escalations", who="ops").get_json()["escalations"]
    assert listed["decision"]["input"] == {"amount": 5000}
    assert listed["decision"]["deciding_rules"] == [
        {"id": "big", "reason": "Big refunds need operations."}]
    assert listed["decision"]["outcome"] == "escalate"


# --------------------------------------------------------------------------- look-alikes


def test_look_alike_allowed_values_are_refused_and_an_imitating_input_is_named(
        api: Api) -> None:
    """`EUR` beside `ЕUR` (a Cyrillic Е) is refused in a ruleset, and an input of `ЕUR`
    where only `EUR` is allowed is told which letter is the impostor."""
    fake = "\u0415UR"
    looks_alike = definition(inputs={
        "amount": {"type": "number", "required": True, "minimum": 0},
        "currency": {"type": "string", "enum": ["EUR", "USD", fake]}})
    refused = api.post(f"{BASE}/versions", {"definition": looks_alike})
    assert refused.status_code == 422
    messages = {d["place"]: d["message"] for d in error_of(refused)["details"]
                if "looks like" in d["message"]}
    assert "CYRILLIC CAPITAL LETTER IE" in messages["inputs.currency.enum[2]"]

    clean = definition(inputs={
        "amount": {"type": "number", "required": True, "minimum": 0},
        "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"}})
    assert api.post(f"{BASE}/versions", {"definition": clean}).status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    answer = api.post(EVALUATE, {"input": {"amount": 5, "currency": fake}})
    assert answer.status_code == 422
    [detail] = error_of(answer)["details"]
    assert detail["place"] == "input.currency"
    assert "looks like 'EUR' but its 'Е' is CYRILLIC CAPITAL LETTER IE" in detail["message"]
