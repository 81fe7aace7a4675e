"""What waits for the signed-in person on the pages: the home page's "Waiting for you",
the count in the navigation, the escalation queue filtered to what they may resolve, the
sentence after a sign-off, and the pages for a mistyped address."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from tests.integration.api_fixtures import Api
from tests.integration.test_pages import NAME, browser_as, live, post_form

__all__ = ["live"]


@pytest.fixture
def escalated(api: Api, live: None) -> str:
    """One open escalation of version 1, addressed to the approver."""
    decision = api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 900}}).get_json()
    return str(decision["escalation"]["id"])


def count_in_navigation(page: str) -> int:
    found = re.search(r'<span class="count[^"]*" aria-label="(\d+) waiting">', page)
    assert found is not None
    return int(found.group(1))


def test_the_home_page_opens_with_what_waits_for_an_approver(
        app: Flask, escalated: str) -> None:
    page = browser_as(app, "appr").get("/").text
    assert page.index("Waiting for you") < page.index("<h2>Rulesets</h2>")
    assert f'href="/rulesets/{NAME}/versions/2">Review {NAME} version 2</a>' in page
    assert "you sign as approver" in page
    assert f'href="/escalations?ruleset={NAME}#esc-{escalated}">' in page
    assert count_in_navigation(page) == 2


def test_the_author_sees_their_own_change_and_whom_it_waits_for(
        app: Flask, escalated: str) -> None:
    page = browser_as(app, "dev").get("/").text
    assert "Your changes under review" in page
    assert ("waiting for the business owner (biz or biz-backup) and the approver "
            "(appr or appr-backup)") in page
    assert "Sign-offs (" not in page and "Escalations you may resolve" not in page
    assert count_in_navigation(page) == 0


def test_nothing_waits_for_an_operator_and_the_page_says_so(
        app: Flask, escalated: str) -> None:
    page = browser_as(app, "ops").get("/").text
    assert "Nothing waits for you" in page
    assert count_in_navigation(page) == 0


def test_the_queue_shows_an_operator_only_what_they_may_resolve(
        app: Flask, escalated: str) -> None:
    client = browser_as(app, "ops")
    mine = client.get("/escalations").text
    assert f'id="esc-{escalated}"' not in mine
    assert "Nothing in the queue for you" in mine
    everyone = client.get("/escalations?whose=everyone").text
    assert f'id="esc-{escalated}"' in everyone
    assert f"/escalations/{escalated}/resolve" not in everyone  # no form they cannot send
    assert ("You may not resolve this one: appr, appr-backup (the approver of version 1) "
            "or an admin may.") in everyone


def test_the_queue_offers_an_approver_the_form(app: Flask, escalated: str) -> None:
    page = browser_as(app, "appr").get("/escalations").text
    assert f"/escalations/{escalated}/resolve" in page
    assert "You may not resolve" not in page


def test_after_a_sign_off_the_page_says_where_the_version_stands(
        app: Flask, live: None) -> None:
    client = browser_as(app, "appr")
    page = f"/rulesets/{NAME}/versions/2"
    done = post_form(client, page, page + "/sign-off", {"decision": "approve"})
    shown = client.get(done.headers["Location"]).text
    assert ("Approved by you as approver; still waiting for the business owner "
            "(biz or biz-backup)") in shown
    assert "You cannot sign" not in shown
    assert "You approved this version as the approver" in shown


def test_a_mistyped_address_is_a_page_for_a_signed_in_person(app: Flask, live: None) -> None:
    response = browser_as(app, "biz").get("/rulesets-typo")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "there is no page at /rulesets-typo" in response.text
    assert "Signed in as" in response.text


def test_a_mistyped_address_without_a_session_asks_to_sign_in(app: Flask) -> None:
    response = app.test_client().get("/nowhere")
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert "/sign-in?next=/nowhere" in response.text


def test_the_api_keeps_its_json_errors(app: Flask, api: Api) -> None:
    response = app.test_client().get("/v1/nowhere")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert api.get("/v1/nowhere").get_json()["error"]["code"] == "not_found"


def test_the_favicon_needs_no_sign_in(app: Flask) -> None:
    response = app.test_client().get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
