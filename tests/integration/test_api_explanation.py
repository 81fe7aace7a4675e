"""The why of a decision over HTTP, and decision search by caller prefix and input value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"

SMALL_FAILED = {"text": "amount <= thresholds.limit", "holds": False,
                "values": {"amount": 900, "thresholds.limit": 100}, "missed_by": 800}


@pytest.fixture
def active(api: Api) -> None:
    response = api.post(f"{BASE}/versions", {"definition": definition(100)})
    assert response.status_code == 201, response.get_json()
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201


def _rules(explanation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in explanation["rules"]}


@pytest.mark.usefixtures("active")
def test_a_recorded_decision_always_carries_its_explanation(api: Api) -> None:
    answer = api.post(f"{BASE}/evaluate", {"input": {"amount": 900}}, who="bot").get_json()
    assert "explanation" not in answer  # the hot path pays nothing unless asked
    record = api.get(f"/v1/decisions/{answer['decision_id']}", who="stranger").get_json()
    why = record["explanation"]
    assert why["summary"] == ("escalate: no rule fired, so the default decided; "
                              "small failed on amount 900 <= thresholds.limit 100; "
                              "huge failed on amount 900 > 100000")
    assert _rules(why)["small"] == {"id": "small", "fired": False, "outcome": "approve",
                                    "conditions": [SMALL_FAILED]}


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("dry_run", [False, True])
def test_evaluate_with_explain_true_answers_the_same_explanation_as_the_record(
        api: Api, dry_run: bool) -> None:
    answer = api.post(f"{BASE}/evaluate?explain=true",
                      {"input": {"amount": 40}, "dry_run": dry_run}).get_json()
    assert answer["explanation"]["summary"] == \
        "approve because small: amount 40 <= thresholds.limit 100"
    assert [r["fired"] for r in answer["explanation"]["rules"]] == [True, False]
    if not dry_run:
        record = api.get(f"/v1/decisions/{answer['decision_id']}").get_json()
        assert record["explanation"] == answer["explanation"]


@pytest.mark.usefixtures("active")
def test_batch_with_explain_explains_each_decision_and_refuses_a_bad_flag(api: Api) -> None:
    answer = api.post(f"{BASE}/evaluate-batch?explain=true",
                      {"inputs": [{"amount": 40}, {"amount": 900}]}).get_json()
    summaries = [d["explanation"]["summary"][:8] for d in answer["decisions"]]
    assert summaries == ["approve ", "escalate"]
    plain = api.post(f"{BASE}/evaluate-batch", {"inputs": [{"amount": 1}]}).get_json()
    assert "explanation" not in plain["decisions"][0]
    bad = api.post(f"{BASE}/evaluate?explain=maybe", {"input": {"amount": 1}})
    assert bad.status_code == 422
    assert [d["place"] for d in error_of(bad)["details"]] == ["explain"]


def test_openapi_documents_the_explanation_and_the_explain_flag(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    evaluate = spec["paths"]["/v1/rulesets/{name}/evaluate"]["post"]
    assert "explain" in [p["name"] for p in evaluate["parameters"]]
    text = str(spec)
    assert "missed_by" in text and "conditions" in text


@pytest.mark.usefixtures("active")
def test_search_by_caller_prefix_and_by_input_value(api: Api) -> None:
    for who, amount in (("bot", 40), ("bot", 900), ("root", 900)):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}},
                        who=who).status_code == 200

    def found(query: str) -> list[tuple[str, Any]]:
        response = api.get(f"/v1/decisions?{query}")
        assert response.status_code == 200, response.get_json()
        return [(d["caller"], d["input"]["amount"]) for d in response.get_json()["decisions"]]

    assert found("caller_prefix=b") == [("bot", 900), ("bot", 40)]
    assert found("caller_prefix=ro") == [("root", 900)]
    assert found("caller_prefix=%25") == []  # a wildcard is a plain character
    assert found("caller=bo") == []
    assert sorted(found("input.amount=900")) == [("bot", 900), ("root", 900)]
    assert found("input.amount=900&caller_prefix=r") == [("root", 900)]
    assert found("input.amount=41") == []
    assert found("input.category=meals") == []
    bad = api.get("/v1/decisions?caller_prefix=&colour=red")
    assert bad.status_code == 422
    assert sorted(d["place"] for d in error_of(bad)["details"]) == ["caller_prefix", "colour"]
    bad = api.get("/v1/decisions?input.a-b=1&input.ok=1")
    assert bad.status_code == 422
    assert [d["place"] for d in error_of(bad)["details"]] == ["input.a-b"]
