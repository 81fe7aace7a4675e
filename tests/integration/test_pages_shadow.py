"""Shadow mode on the pages: the review page's figures, examples and control, the
runbook's live state and the dashboard."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from rules_service.bootstrap import Container
from rules_service.services import accounts
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock
from tests.integration.test_pages import browser_as, post_form
from tests.integration.test_pages_sign_in import PASSWORD
from tests.integration.test_shadow import active_v1_pending_v2, evaluate, runner

PAGE = "/rulesets/refunds/versions/2"


def test_the_author_starts_a_shadow_on_the_review_page_and_sees_its_figures(
        app: Flask, api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    for who in ("dev", "biz", "stranger"):
        accounts.set_password(container.uow(), who, PASSWORD)
    stranger = browser_as(app, "stranger")
    page = stranger.get(PAGE).text
    assert "has not run in shadow" in page and 'id="shadow-start"' not in page

    dev = browser_as(app, "dev")
    page = dev.get(PAGE).text
    assert 'id="shadow-start"' in page and "alert_percent" not in page  # the owner's
    assert 'name="alert_percent"' in browser_as(app, "biz").get(PAGE).text
    refused = post_form(dev, PAGE, f"{PAGE}/shadow", {"sample_percent": "abc"})
    assert refused.status_code == 303
    assert "sample: must be a number" in dev.get(PAGE).text
    clock.advance(timedelta(seconds=1))
    started = post_form(dev, PAGE, f"{PAGE}/shadow", {"sample_percent": "100"})
    assert started.status_code == 303

    decided = evaluate(api, [150, 150, 10, 300])
    runner(container).catch_up()
    page = dev.get(PAGE).text
    assert "In shadow since" in page
    assert "<strong>2 decided differently</strong>" in page and "Of <strong>4</strong>" in page
    assert "escalate → approve: 2" in page and "escalate → reject: 1" not in page
    assert f"/decisions/{decided[0]['decision_id']}" in page
    assert 'id="shadow-stop"' in page

    runbook = dev.get("/rulesets/refunds").text
    assert "In shadow since" in runbook and "2 of 4 decided differently" in runbook
    markdown = api.get("/v1/rulesets/refunds/runbook?format=markdown").text
    assert "in shadow since" in markdown
    live = api.get("/v1/rulesets/refunds/runbook").get_json()["live"]
    assert live["open_versions"][0]["shadow"]["decisions"] == 4
    [running] = api.get("/v1/dashboard").get_json()["in_shadow"]
    assert (running["ruleset"], running["version"], running["decisions"],
            running["disagreements"]) == ("refunds", 2, 4, 2)
    dashboard = dev.get("/dashboard").text
    assert 'id="in-shadow"' in dashboard and "refunds version 2" in dashboard

    assert post_form(dev, PAGE, f"{PAGE}/shadow/stop", {}).status_code == 303
    page = dev.get(PAGE).text
    assert "it ended: stopped (dev)" in page and 'id="shadow-stop"' not in page
    assert 'id="in-shadow"' not in dev.get("/dashboard").text
    assert api.get("/v1/dashboard").get_json()["in_shadow"] == []
