"""The propose page's helpers through the app on a real database: the thresholds form
written into the file, problems and failing tests with their lines, the refused values kept,
and an ended session said in words."""

from __future__ import annotations

import yaml
from flask import Flask

from tests.integration.conftest import definition
from tests.integration.test_pages import NAME, browser_as, live
from tests.integration.test_pages_sign_in import csrf_of

__all__ = ["live"]  # the fixture these tests use


def draft_text(**changes: object) -> str:
    return "# refunds\n" + yaml.safe_dump(definition(**changes), sort_keys=False)


def test_the_form_writes_a_threshold_and_refuses_an_empty_field(app: Flask, live: None) -> None:
    client = browser_as(app, "biz")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    text = draft_text()
    answer = client.post(f"/pages-api/rulesets/{NAME}/thresholds", headers={"X-CSRFToken": token},
                         json={"content": text, "values": {"limit": "800"}}).get_json()
    assert answer["problems"] == [] and "limit: 800" in answer["content"]
    assert answer["content"].startswith("# refunds\n")  # the comment is kept
    empty = client.post(f"/pages-api/rulesets/{NAME}/thresholds",
                        headers={"X-CSRFToken": token},
                        json={"content": text, "values": {"limit": ""}}).get_json()
    assert empty["content"] == text
    assert empty["problems"][0]["place"] == "thresholds.limit"
    bad = client.post(f"/pages-api/rulesets/{NAME}/thresholds", headers={"X-CSRFToken": token},
                      json={"content": text, "values": {"limit": 5}})
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["place"] == "values"


def test_the_check_gives_failing_tests_their_line_and_places_in_words(
        app: Flask, live: None) -> None:
    client = browser_as(app, "biz")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    text = draft_text(limit=0)  # the embedded test expects a refund of 1 to be approved
    answer = client.post(f"/pages-api/rulesets/{NAME}/check", headers={"X-CSRFToken": token},
                         json={"content": text}).get_json()
    failing = [t for t in answer["tests"] if not t["passed"]]
    assert failing and all(t["line"] for t in failing)
    assert text.splitlines()[failing[0]["line"] - 1].lstrip().startswith("- ")
    assert answer["thresholds"]["limit"] == 0
    broken = text.replace("amount <= thresholds.limit", "amount <= thresholds.limt")
    answer = client.post(f"/pages-api/rulesets/{NAME}/check", headers={"X-CSRFToken": token},
                         json={"content": broken}).get_json()
    [problem] = answer["problems"]
    assert problem["place"].startswith("rules[") and problem["where"].startswith("rule ")
    assert problem["where"].endswith(f"line {problem['line']}")


def test_a_refused_proposal_shows_the_refused_values_in_the_form(app: Flask,
                                                                 live: None) -> None:
    client = browser_as(app, "stranger")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    response = client.post(f"/rulesets/{NAME}/propose",
                           data={"csrf_token": token, "content": draft_text(limit=125)})
    assert response.status_code == 403
    assert 'data-threshold="limit" data-kind="number" value="125"' in response.text


def test_an_ended_session_is_said_in_words_with_a_way_back(app: Flask, live: None) -> None:
    client = browser_as(app, "biz")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    client.post("/sign-out", data={"csrf_token": token})
    page = client.post(f"/rulesets/{NAME}/propose", data={"csrf_token": token,
                                                          "content": draft_text()},
                       headers={"Referer": f"http://localhost/rulesets/{NAME}/propose"})
    assert page.status_code == 401 and "your session has ended" in page.text
    assert f"/sign-in?next=/rulesets/{NAME}/propose" in page.text
    helper = client.post(f"/pages-api/rulesets/{NAME}/check", headers={"X-CSRFToken": token},
                         json={"content": draft_text()})
    assert helper.status_code == 401
    assert helper.get_json()["error"]["code"] == "unauthenticated"
