"""Requests that used to cost seconds of CPU or megabytes of answer before their refusal.

Limits come first (the rule count before the structure, the batch size before its items),
an answer lists at most MAX_REPORTED_PROBLEMS problems and says how many more there are,
and no problem repeats a large value back. The tests assert the behaviour (status,
capped details, bounded size), not timings; the figures are in the commit messages.
"""

from __future__ import annotations

import pytest

from rules_service.domain.problems import MAX_REPORTED_PROBLEMS
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import definition

BASE = "/v1/rulesets/refunds"
WITH_CURRENCY = {"amount": {"type": "number", "required": True, "minimum": 0},
                 "currency": {"type": "string", "enum": ["EUR", "USD"]}}


@pytest.fixture
def active(api: Api) -> None:
    """Refunds version 1, with an amount and a currency, is active."""
    response = api.post(f"{BASE}/versions", {"definition": definition(inputs=WITH_CURRENCY)})
    assert response.status_code == 201, response.get_json()
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201


def assert_capped(error: dict[str, object], total: int) -> None:
    details = error["details"]
    assert isinstance(details, list)
    assert len(details) == MAX_REPORTED_PROBLEMS + 1
    assert details[-1]["message"].startswith(f"{total - MAX_REPORTED_PROBLEMS:,} more problems")
    assert f"{total} problems" in str(error["message"])


@pytest.mark.usefixtures("active")
def test_a_hundred_thousand_unknown_input_keys_get_a_short_answer(api: Api) -> None:
    raw = {f"currency_{i}": "x" for i in range(100_000)} | {"amount": 1}
    response = api.post(f"{BASE}/evaluate", {"input": raw})
    assert response.status_code == 422
    error = error_of(response)
    assert_capped(error, 100_000)
    assert "did you mean 'currency'" in error["details"][0]["message"]
    assert len(response.data) < 20_000  # was 12.6 MB
    assert api.get("/v1/decisions").get_json()["decisions"] == []


@pytest.mark.usefixtures("active")
def test_a_large_value_or_key_is_never_repeated_back_in_full(api: Api) -> None:
    huge = "Q" * 1_000_000
    response = api.post(f"{BASE}/evaluate", {"input": {"amount": 1, "currency": huge,
                                                       huge: 1}})
    assert response.status_code == 422
    details = error_of(response)["details"]
    assert len(details) == 2
    assert len(response.data) < 2_000
    assert all("more characters" in d["place"] + d["message"] for d in details)


@pytest.mark.usefixtures("active")
def test_a_batch_is_refused_for_its_size_before_its_items_are_read(api: Api) -> None:
    response = api.post(f"{BASE}/evaluate-batch", {"inputs": [{}] * 100_000})
    assert response.status_code == 422
    assert [d["place"] for d in error_of(response)["details"]] == ["inputs"]
    # Items that are not even objects: only the count is reported, not 2,000 item errors.
    response = api.post(f"{BASE}/evaluate-batch", {"inputs": ["not an object"] * 2_000})
    assert response.status_code == 422
    assert [d["place"] for d in error_of(response)["details"]] == ["inputs"]


def test_too_many_rules_is_the_only_problem_reported_however_broken_they_are(
        api: Api) -> None:
    rules = [{"id": f"r{i}", "whn": "amount >", "then": "perhaps"} for i in range(10_001)]
    response = api.post(f"{BASE}/versions", {"definition": definition(rules=rules)})
    assert response.status_code == 422
    [detail] = error_of(response)["details"]
    assert detail["place"] == "rules" and "10,001 rules" in detail["message"]


def test_a_ruleset_with_hundreds_of_problems_lists_the_first_and_counts_the_rest(
        api: Api) -> None:
    rules = [{"id": f"r{i}", "when": "amount >", "then": "approve"} for i in range(200)]
    response = api.post(f"{BASE}/versions", {"definition": definition(rules=rules, tests=[])})
    assert response.status_code == 422
    assert_capped(error_of(response), 200)


def test_a_hundred_thousand_unknown_body_fields_get_a_short_answer(api: Api) -> None:
    body = {f"field_{i}": 1 for i in range(100_000)} | {"input": {"amount": 1}}
    response = api.post(f"{BASE}/evaluate", body)
    assert response.status_code == 422
    assert_capped(error_of(response), 100_000)
    assert len(response.data) < 20_000
