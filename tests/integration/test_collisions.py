"""Versions that collide on one base: the proposal's warnings, the propose page's banner,
the stale notice when another goes live, and the review page of small and large changes."""

from __future__ import annotations

from typing import Any

import yaml
from flask import Flask

from rules_service.bootstrap import Container
from rules_service.services import accounts
from tests.integration.api_fixtures import Api
from tests.integration.conftest import definition
from tests.integration.test_pages import NAME, browser_as, live  # noqa: F401
from tests.integration.test_pages_sign_in import PASSWORD

PAGE_BUDGET = 200_000
"""Bytes a review page may weigh, even for a change touching 400 rules."""


def test_a_proposal_names_every_open_version_on_its_base(api: Api, live: None) -> None:  # noqa: F811
    third = api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition(limit=170)},
                     who="biz")
    assert third.status_code == 201, third.text
    [warning] = third.get_json()["warnings"]
    assert {k: warning[k] for k in ("code", "version", "author", "status", "base_version")} \
        == {"code": "open_version_on_base", "version": 2, "author": "dev",
            "status": "pending", "base_version": 1}
    assert "whichever goes live first" in warning["message"]


def test_a_lone_proposal_has_no_warnings(api: Api) -> None:
    first = api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition()})
    assert first.status_code == 201 and first.get_json()["warnings"] == []


def test_the_propose_page_warns_before_and_the_version_page_after(
        app: Flask, api: Api, live: None) -> None:  # noqa: F811
    client = browser_as(app, "biz")
    before = client.get(f"/rulesets/{NAME}/propose").text
    assert 'id="open-versions"' in before and "version 2</a> by dev (pending" in before
    api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition(limit=170)},
             who="biz")
    after = client.get(f"/rulesets/{NAME}/versions/3").text
    assert 'id="open-alongside"' in after and "version 2</a> by dev (pending)" in after


def test_going_live_makes_the_other_stale_and_its_page_says_which_won(
        app: Flask, api: Api, live: None) -> None:  # noqa: F811
    api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition(limit=170)},
             who="biz-backup")
    assert api.post(f"/v1/rulesets/{NAME}/versions/3/signoffs", {"decision": "approve"},
                    who="appr").status_code == 201
    for who in ("biz", "appr-backup"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/2/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    assert api.get(f"/v1/rulesets/{NAME}/versions/3").get_json()["status"] == "stale"
    audit = api.get(f"/v1/rulesets/{NAME}/audit").get_json()
    events = audit.get("events", audit) if isinstance(audit, dict) else audit
    stale = [e for e in events if e["action"] == "stale"]
    assert [(e["version"], e["details"]["active_version"]) for e in stale] == [(3, 2)]
    page = browser_as(app, "appr").get(f"/rulesets/{NAME}/versions/3").text
    assert "Stale:" in page and "version 2</a> went live on top of its base" in page


def _file(rules: int, shift: int, comment: str = "") -> str:
    body: dict[str, Any] = definition()
    body["rules"] = body["rules"] + [
        {"id": f"band-{i:03d}", "when": f"amount > {shift + 1000 + i}", "then": "escalate",
         "reason": f"Refunds above {shift + 1000 + i} are looked at by a person."}
        for i in range(rules)]
    return comment + yaml.safe_dump(body, sort_keys=False)


def _propose_file(api: Api, text: str, who: str) -> int:
    answer = api.post(f"/v1/rulesets/{NAME}/versions", {"content": text}, who=who)
    assert answer.status_code == 201, answer.text[:500]
    return int(answer.get_json()["version"])


def _activate(api: Api, number: int) -> None:
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/{number}/signoffs",
                        {"decision": "approve"}, who=who).status_code == 201


def test_a_change_of_400_rules_is_collapsed_and_under_the_page_budget(
        app: Flask, api: Api, container: Container) -> None:
    _activate(api, _propose_file(api, _file(400, 0), "root"))
    number = _propose_file(api, _file(400, 500), "dev")
    accounts.set_password(container.uow(), "appr", PASSWORD)
    client = browser_as(app, "appr")
    response = client.get(f"/rulesets/{NAME}/versions/{number}")
    assert response.status_code == 200
    assert len(response.data) < PAGE_BUDGET, len(response.data)
    page = response.text
    assert "<strong>800 changes to 400 rules.</strong>" in page
    assert page.count('<details class="change">') == 400  # one per rule, each closed
    assert "<details class=\"change\" open>" not in page
    assert 'id="file-diff-link"' in page
    text = client.get(f"/rulesets/{NAME}/versions/{number}/file.diff")
    assert text.mimetype == "text/plain"
    assert text.text.startswith(f"--- {NAME} version 1\n+++ {NAME} version {number}\n")
    assert "\n-  when: amount > 1000\n" in text.text
    assert "\n+  when: amount > 1500\n" in text.text


def test_comment_changes_are_shown_beside_a_rule_change(app: Flask, api: Api,
                                                        container: Container) -> None:
    _activate(api, _propose_file(api, _file(3, 0), "root"))
    number = _propose_file(api, _file(3, 5, comment="# Bands reviewed in <May>.\n"), "dev")
    accounts.set_password(container.uow(), "appr", PASSWORD)
    client = browser_as(app, "appr")
    page = client.get(f"/rulesets/{NAME}/versions/{number}").text
    assert 'id="comment-lines"' in page and "(1 lines)" in page
    assert "<ins>+# Bands reviewed in &lt;May&gt;.</ins>" in page  # escaped
    assert '<details class="change" open>' in page  # a small change is open at once
