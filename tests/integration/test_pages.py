"""The pages, through the Flask client: each person's job done with forms, over the services."""

from __future__ import annotations

import re

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from rules_service.adapters import rollup_fold
from rules_service.bootstrap import Container
from rules_service.services import accounts
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock, definition
from tests.integration.test_pages_sign_in import PASSWORD, csrf_of, sign_in

NAME = "refunds"


@pytest.fixture
def live(api: Api, container: Container) -> None:
    """Refunds version 1 active, version 2 (limit 150, by dev) pending; everyone has a
    password."""
    assert api.post(f"/v1/rulesets/{NAME}/versions",
                    {"definition": definition()}).status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    assert api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition(limit=150)},
                    who="dev").status_code == 201
    for who in ("biz", "biz-backup", "dev", "appr", "appr-backup", "ops", "stranger"):
        accounts.set_password(container.uow(), who, PASSWORD)


def browser_as(app: Flask, who: str) -> FlaskClient:
    """A client signed in as ``who``."""
    client = app.test_client()
    assert sign_in(client, who).status_code == 303
    return client


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, str]):
    """Posts a form of ``page`` with the page's CSRF token, as the browser would."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**data, "csrf_token": token})


def test_the_rulesets_list_shows_active_pending_and_missing_signoffs(
        app: Flask, live: None) -> None:
    page = browser_as(app, "biz").get("/").text
    assert "version 1" in page and "/rulesets/refunds/versions/2" in page
    assert ("still needs the business owner (biz or biz-backup) and the approver "
            "(appr or appr-backup)") in page


def test_the_ruleset_page_shows_owners_runbook_and_audit(app: Flask, live: None) -> None:
    page = browser_as(app, "biz").get(f"/rulesets/{NAME}").text
    assert "biz-backup" in page and "Refund quickly." in page
    assert "who have 4 hours to resolve it" in page  # the runbook, in sentences
    assert "Proposed" in page and "Approved" in page  # audit actions


def test_the_author_sees_why_they_cannot_sign(app: Flask, live: None) -> None:
    client = browser_as(app, "dev")
    page = client.get(f"/rulesets/{NAME}/versions/2").text
    assert "You cannot sign this version off: dev is the author" in page
    assert "Raised limit from 100 to 150" in page
    assert '<mark class="ins">150</mark>' in page
    refused = post_form(client, f"/rulesets/{NAME}/versions/2",
                        f"/rulesets/{NAME}/versions/2/sign-off", {"decision": "approve"})
    assert refused.status_code == 303, refused.text
    assert "is the author of this version" in client.get(refused.headers["Location"]).text


def test_an_approver_and_a_backup_approve_and_the_version_goes_live(
        app: Flask, live: None, api: Api) -> None:
    for who in ("appr", "biz-backup"):
        client = browser_as(app, who)
        page = f"/rulesets/{NAME}/versions/2"
        assert "you would sign as" in client.get(page).text.lower()
        response = post_form(client, page, page + "/sign-off",
                             {"decision": "approve", "comment": "fine"})
        assert response.status_code == 303
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 2
    assert "This version is live" in client.get(page).text


def test_a_form_without_its_csrf_token_is_refused(app: Flask, live: None, api: Api) -> None:
    client = browser_as(app, "appr")
    response = client.post(f"/rulesets/{NAME}/versions/2/sign-off",
                           data={"decision": "approve"})
    assert response.status_code == 400 and "security token" in response.text
    assert api.get(f"/v1/rulesets/{NAME}/versions/2").get_json()["signoffs"] == []


def test_the_editor_checks_a_draft_and_names_each_problem_with_its_line(
        app: Flask, live: None) -> None:
    client = browser_as(app, "biz")
    page = client.get(f"/rulesets/{NAME}/propose").text
    token = csrf_of(page)
    draft = yaml.safe_dump(definition(limit=120), sort_keys=False)
    broken = draft.replace("amount <= thresholds.limit", "amount <= thresholds.limt")
    answer = client.post(f"/pages-api/rulesets/{NAME}/check", json={"content": broken},
                         headers={"X-CSRFToken": token}).get_json()
    assert not answer["ok"]
    [problem] = answer["problems"]
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "limt" in text)
    assert problem["line"] == line and "limt" in problem["message"]
    fixed = client.post(f"/pages-api/rulesets/{NAME}/check", json={"content": draft},
                        headers={"X-CSRFToken": token}).get_json()
    assert fixed["ok"] and fixed["tests"][0]["passed"]


def test_the_editor_helpers_need_the_csrf_token(app: Flask, live: None) -> None:
    client = browser_as(app, "biz")
    response = client.post(f"/pages-api/rulesets/{NAME}/check", json={"content": "x"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf_failed"


def test_a_draft_is_tried_previewed_and_proposed_with_an_effective_time(
        app: Flask, live: None, api: Api) -> None:
    for amount in (120, 130, 90):
        api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": amount}}, who="bot")
    client = browser_as(app, "biz")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    draft = yaml.safe_dump(definition(limit=125), sort_keys=False)
    tried = client.post(f"/pages-api/rulesets/{NAME}/try", headers={"X-CSRFToken": token},
                        json={"content": draft, "inputs": [{"amount": 124}, {"amount": -1}]})
    first, second = tried.get_json()["results"]
    assert first["outcome"] == "approve" and first["fired_rules"][0]["id"] == "small"
    assert first["explanation"]["summary"] == \
        "approve because small: amount 124 <= thresholds.limit 125"
    # The active version's answer beside the draft's, with its explanation.
    assert first["active"]["outcome"] == "escalate"
    assert first["active"]["explanation"]["rules"][0]["conditions"][0]["missed_by"] == 24
    assert second["problems"][0]["place"] == "input.amount"
    assert second["active"]["problems"][0]["place"] == "input.amount"
    preview = client.post(f"/pages-api/rulesets/{NAME}/preview", json={"content": draft},
                          headers={"X-CSRFToken": token}).get_json()
    assert preview["summary"] == ["Raised limit from 100 to 125"]
    assert preview["impact"]["changed"] == 1
    assert preview["impact"]["examples"][0]["input"] == {"amount": 120}
    response = client.post(f"/rulesets/{NAME}/propose", data={
        "csrf_token": token, "content": draft, "note": "a bit more",
        "effective_at": "2099-01-01T09:00"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/versions/3?proposed=1")
    version = api.get(f"/v1/rulesets/{NAME}/versions/3").get_json()
    assert version["author"] == "biz" and version["effective_at"].startswith("2099-01-01T09:00")


def test_a_refused_proposal_shows_the_editor_again_with_the_reason(app: Flask,
                                                                    live: None) -> None:
    client = browser_as(app, "stranger")
    token = csrf_of(client.get(f"/rulesets/{NAME}/propose").text)
    draft = yaml.safe_dump(definition(limit=125), sort_keys=False)
    response = client.post(f"/rulesets/{NAME}/propose",
                           data={"csrf_token": token, "content": draft})
    assert response.status_code == 403
    assert "stranger is neither maintainer nor business_owner" in response.text
    assert "limit: 125" in response.text  # the draft is kept


def test_an_operator_resolves_an_overdue_escalation(app: Flask, live: None, api: Api,
                                                    clock: FakeClock,
                                                    container: Container) -> None:
    from datetime import timedelta

    from rules_service.services.delivery import Worker

    decision = api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 500}},
                        who="bot").get_json()
    escalation = decision["escalation"]["id"]
    clock.advance(timedelta(hours=5))
    assert Worker(container.uow, clock=container.clock).walk_escalations() == 1
    client = browser_as(app, "appr")
    page = client.get("/escalations?state=overdue&ruleset=refunds").text
    assert escalation in page and "status-overdue" in page and "&#34;amount&#34;: 500" in page
    assert "<dt>Escalated</dt>" in page and "no one left on the runbook" in page
    response = post_form(client, "/escalations", f"/escalations/{escalation}/resolve",
                         {"resolution": "approve", "comment": "checked", "back": "/escalations"})
    assert response.status_code == 303
    resolved = api.get(f"/v1/decisions/{decision['decision_id']}").get_json()["escalation"]
    assert resolved["status"] == "resolved" and resolved["comment"] == "checked"


def test_decisions_are_searched_and_one_shows_why(app: Flask, live: None, api: Api) -> None:
    api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 5}}, who="bot")
    decision = api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 500}},
                        who="bot").get_json()
    client = browser_as(app, "ops")
    listing = client.get("/decisions?outcome=escalate&caller=bot").text
    assert decision["decision_id"] in listing and listing.count("status-approve") == 0
    assert "No decisions match" in client.get("/decisions?caller=nobody").text
    assert decision["decision_id"] in client.get("/decisions?caller=bo").text  # its start
    by_value = client.get("/decisions?field=amount&value=500").text
    assert decision["decision_id"] in by_value and by_value.count("status-approve") == 0
    assert "No decisions match" in client.get("/decisions?field=amount&value=501").text
    page = client.get(f"/decisions/{decision['decision_id']}").text
    assert "/rulesets/refunds/versions/1" in page and "No rule fired" in page
    why = page.split('id="why"')[1].split("<h2>Rules that fired</h2>")[0]
    assert "no rule fired, so the default decided" in why
    assert '<code>amount &lt;= thresholds.limit</code> <span class="verdict">does not hold' in why
    assert "(misses by 400)" in why and "<code>500</code>" in why


def test_the_dashboard_draws_its_figures_as_charts(app: Flask, live: None, api: Api,
                                                   container: Container) -> None:
    for amount in (5, 500, 7):
        api.post(f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": amount}}, who="bot")
    rollup_fold.fold_pending(container.engine)  # not waiting for the background fold
    page = browser_as(app, "ops").get("/dashboard?window=1h&ruleset=refunds").text
    charts = re.findall(r'data-chart="(\w+)"', page)
    assert {"throughput", "outcomes", "rates", "latency", "escalations", "approval",
            "hours"} <= set(charts)
    throughput = page.split('data-chart="throughput"')[1].split("</svg>")[0]
    assert 'class="bar"' in throughput and "decisions" in throughput
    assert "3 (" in page  # three decisions in the window


def test_an_unknown_ruleset_is_a_not_found_page(app: Flask, live: None) -> None:
    response = browser_as(app, "biz").get("/rulesets/nope")
    assert response.status_code == 404 and "no ruleset named nope" in response.text


def test_the_operations_owner_rolls_back_from_the_ruleset_page(app: Flask, live: None,
                                                               api: Api) -> None:
    for who in ("appr", "biz"):
        api.post(f"/v1/rulesets/{NAME}/versions/2/signoffs", {"decision": "approve"}, who=who)
    client = browser_as(app, "ops")
    page = f"/rulesets/{NAME}"
    assert 'name="to_version"' in client.get(page).text
    response = post_form(client, page, page + "/rollback",
                         {"to_version": "1", "reason": "limit too high"})
    assert "Version 1 is active again" in client.get(response.headers["Location"]).text
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 1
    refused = post_form(browser_as(app, "stranger"), page, page + "/rollback",
                        {"to_version": "2", "reason": "mine"})
    assert refused.status_code == 303
    assert api.get(f"/v1/rulesets/{NAME}").get_json()["active_version"] == 1
