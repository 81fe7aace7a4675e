"""Pausing from the ruleset page (one form, the reason asked), the paused and review-due
marks on the pages, the inbox items and the runbook's restart checklist."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock, definition
from tests.integration.test_pages import NAME, browser_as, live, post_form

__all__ = ["live"]

PAGE = f"/rulesets/{NAME}"
RESTART = ["Check the exception rate of the last hour", "Tell the approvers"]


@pytest.mark.parametrize("who", ["ops", "biz-backup"])
def test_an_owner_pauses_and_resumes_from_the_ruleset_page(app: Flask, api: Api,
                                                            live: None, who: str) -> None:
    client = browser_as(app, who)
    page = client.get(PAGE).text
    assert 'id="pause-button"' in page and 'name="reason"' in page
    done = post_form(client, PAGE, f"{PAGE}/pause", {"reason": "fraud wave"})
    assert done.status_code == 303
    paused = api.get(f"/v1/rulesets/{NAME}").get_json()["paused"]
    assert (paused["by"], paused["reason"]) == (who, "fraud wave")
    page = client.get(PAGE).text
    assert f"{NAME} is paused by {who} since" in page and "fraud wave" in page
    assert 'id="resume-button"' in page and 'id="pause-button"' not in page
    assert 'id="runbook-paused"' in page
    listing = client.get("/").text
    assert 'class="paused-mark"' in listing and "fraud wave" in listing
    assert post_form(client, PAGE, f"{PAGE}/resume", {}).status_code == 303
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["paused"] is None
    assert 'id="pause-button"' in client.get(PAGE).text


@pytest.mark.parametrize("who", ["dev", "appr", "stranger"])
def test_others_see_the_pause_but_get_no_button(app: Flask, api: Api, live: None,
                                                who: str) -> None:
    client = browser_as(app, who)
    assert 'id="pause-button"' not in client.get(PAGE).text
    refused = post_form(client, PAGE, f"{PAGE}/pause", {"reason": "x"})
    assert refused.status_code == 303
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["paused"] is None
    assert api.post(f"/v1/rulesets/{NAME}/pause", {"reason": "look"}, who="ops") \
        .status_code == 200
    page = client.get(PAGE).text
    assert 'id="paused-sentence"' in page and 'id="resume-button"' not in page


def test_a_pause_without_a_reason_is_refused_on_the_page(app: Flask, api: Api,
                                                         live: None) -> None:
    client = browser_as(app, "ops")
    post_form(client, PAGE, f"{PAGE}/pause", {"reason": "  "})
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["paused"] is None
    assert "a pause needs a reason" in client.get(PAGE).text


def test_the_owners_inbox_says_paused_by_whom_since_when(app: Flask, api: Api,
                                                         live: None) -> None:
    assert api.post(f"/v1/rulesets/{NAME}/pause", {"reason": "look"}, who="ops") \
        .status_code == 200
    for owner in ("biz", "ops-backup"):
        [item] = api.get("/v1/me/inbox", who=owner).get_json()["paused"]
        assert item["ruleset"] == NAME and item["by"] == "ops"
        assert item["message"].startswith("paused by ops since ")
    assert api.get("/v1/me/inbox", who="appr").get_json()["paused"] == []
    page = browser_as(app, "biz").get("/").text
    assert 'id="waiting-paused"' in page and "is paused by ops since" in page


def test_a_paused_decision_page_shows_what_the_rules_decided(app: Flask, api: Api,
                                                             live: None) -> None:
    assert api.post(f"/v1/rulesets/{NAME}/pause", {"reason": "look"}, who="ops") \
        .status_code == 200
    decision = api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 5}}).get_json()
    page = browser_as(app, "biz").get(f"/decisions/{decision['decision_id']}").text
    assert 'id="decision-paused"' in page and "its rules decided" in page
    assert "status-approve" in page.split('id="decision-paused"')[1].split("</dd>")[0]


def test_the_runbook_shows_the_restart_checklist_next_to_rollback(
        app: Flask, api: Api, live: None) -> None:
    runbook = {"purpose": "Refund quickly.", "rollback": "Roll back to the last version.",
               "restart": RESTART,
               "escalation": {"path": ["appr"], "response_time_target": "4h"}}
    assert api.post(f"/v1/rulesets/{NAME}/versions/2/withdraw", {}, who="dev") \
        .status_code == 200
    assert api.post(f"/v1/rulesets/{NAME}/versions",
                    {"definition": definition(limit=120, runbook=runbook)},
                    who="dev").status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/3/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    body = api.get(f"/v1/rulesets/{NAME}/runbook").get_json()
    assert body["runbook"]["restart"] == RESTART
    assert list(body["runbook"]).index("restart") == list(body["runbook"]).index("rollback") + 1
    markdown = api.get(f"/v1/rulesets/{NAME}/runbook?format=markdown").get_data(as_text=True)
    assert "## Rollback\n\nRoll back to the last version.\n\n## Restart checklist\n\n" \
           "1. Check the exception rate of the last hour\n2. Tell the approvers" in markdown
    page = browser_as(app, "ops").get(PAGE).text
    checklist = page.split('id="runbook-restart"')[1].split("</ol>")[0]
    assert all(step in checklist for step in RESTART)
    assert page.index('id="runbook-rollback"') < page.index('id="runbook-restart"')
    assert api.post(f"/v1/rulesets/{NAME}/pause", {"reason": "look"}, who="ops") \
        .status_code == 200
    markdown = api.get(f"/v1/rulesets/{NAME}/runbook?format=markdown").get_data(as_text=True)
    assert "- **Paused** by ops since" in markdown and "look." in markdown
    live_state = api.get(f"/v1/rulesets/{NAME}/runbook").get_json()["live"]
    assert live_state["paused"]["reason"] == "look"


def test_a_review_falls_due_for_the_business_owner_until_a_new_version(
        app: Flask, api: Api, live: None, clock: FakeClock) -> None:
    assert api.post(f"/v1/rulesets/{NAME}/versions/2/withdraw", {}, who="dev") \
        .status_code == 200
    assert api.post(f"/v1/rulesets/{NAME}/versions",
                    {"definition": definition(limit=120, review_every="30d")},
                    who="dev").status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/3/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    activated = clock.now
    detail = api.get(f"/v1/rulesets/{NAME}").get_json()
    assert detail["review_due_at"] == (activated + timedelta(days=30)).isoformat()
    assert api.get("/v1/me/inbox", who="biz").get_json()["reviews"] == []
    clock.advance(timedelta(days=30))
    for owner in ("biz", "biz-backup"):
        [item] = api.get("/v1/me/inbox", who=owner).get_json()["reviews"]
        assert (item["ruleset"], item["version"]) == (NAME, 3)
    assert api.get("/v1/me/inbox", who="ops").get_json()["reviews"] == []
    client = browser_as(app, "biz")
    assert 'id="review-due"' in client.get(PAGE).text
    assert "status-review_due" in client.get("/").text
    assert 'id="waiting-reviews"' in client.get("/").text
    # A new version (here: a rollback) starts the rhythm again.
    assert api.post(f"/v1/rulesets/{NAME}/rollback", {"to_version": 1, "reason": "r"},
                    who="ops").status_code == 200
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["review_due_at"] is None
    assert api.get("/v1/me/inbox", who="biz").get_json()["reviews"] == []


def test_the_dashboard_shades_paused_periods_and_counts_their_decisions(
        app: Flask, api: Api, live: None, clock: FakeClock) -> None:
    assert api.post(f"/v1/rulesets/{NAME}/pause", {"reason": "fraud wave"}, who="ops") \
        .status_code == 200
    assert api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 5}}) \
        .status_code == 200
    clock.advance(timedelta(minutes=30))
    assert api.post(f"/v1/rulesets/{NAME}/resume", who="ops").status_code == 200
    page = browser_as(app, "ops").get(f"/dashboard?ruleset={NAME}&window=24h").text
    assert 'id="paused-periods"' in page and "fraud wave" in page
    assert page.count('class="paused-band"') == 7  # one per chart
    card = page.split('id="paused-decisions"')[1].split("</li>")[0]
    assert "1 decision went to people" in card
