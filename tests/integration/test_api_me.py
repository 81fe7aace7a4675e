"""GET /v1/me and /v1/me/inbox through HTTP, on the real database."""

from __future__ import annotations

import pytest

from tests.integration.api_fixtures import Api
from tests.integration.conftest import definition

BASE = "/v1/rulesets/refunds"


@pytest.fixture
def pending_v2(api: Api) -> str:
    """Version 1 active, version 2 pending (by dev), one open escalation of version 1."""
    assert api.post(f"{BASE}/versions", {"definition": definition(100)}, who="root"
                    ).status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    assert api.post(f"{BASE}/versions", {"definition": definition(200), "note": "raise"},
                    who="dev").status_code == 201
    decision = api.post(f"{BASE}/evaluate", {"input": {"amount": 900}}).get_json()
    return str(decision["escalation"]["id"])


def test_me_names_the_caller_and_the_roles_they_hold(api: Api, pending_v2: str) -> None:
    answer = api.get("/v1/me", who="biz-backup")
    assert answer.status_code == 200
    assert answer.get_json() == {
        "name": "biz-backup", "admin": False, "automation": False,
        "roles": [{"ruleset": "refunds", "role": "business_owner", "as": "backup"}]}
    root = api.get("/v1/me", who="root").get_json()
    assert (root["admin"], root["roles"]) == (True, [])


def test_the_inbox_of_an_approver_a_business_owner_and_the_author(
        api: Api, pending_v2: str) -> None:
    appr = api.get("/v1/me/inbox", who="appr").get_json()
    [signoff] = appr["signoffs"]
    assert {k: signoff[k] for k in ("ruleset", "version", "author", "note", "roles")} == \
        {"ruleset": "refunds", "version": 2, "author": "dev", "note": "raise",
         "roles": ["approver"]}
    assert signoff["proposed_at"]
    [escalation] = appr["escalations"]
    assert (escalation["id"], escalation["ruleset"], escalation["to_role"],
            escalation["overdue"]) == (pending_v2, "refunds", "approver", False)
    assert escalation["due_at"]
    dev = api.get("/v1/me/inbox", who="dev").get_json()
    assert (dev["signoffs"], dev["escalations"]) == ([], [])
    [mine] = dev["proposals"]
    assert (mine["version"], mine["status"], mine["missing_signoffs"]) == \
        (2, "pending", ["business_owner", "approver"])
    ops = api.get("/v1/me/inbox", who="ops").get_json()
    assert ops == {"signoffs": [], "escalations": [], "proposals": [], "paused": [],
                   "reviews": []}


def test_what_was_done_leaves_the_inbox(api: Api, pending_v2: str) -> None:
    assert api.post(f"/v1/escalations/{pending_v2}/resolve", {"resolution": "approve"},
                    who="appr-backup").status_code == 200
    assert api.post(f"{BASE}/versions/2/signoffs", {"decision": "approve"},
                    who="appr").status_code == 201
    appr_backup = api.get("/v1/me/inbox", who="appr-backup").get_json()
    assert (appr_backup["signoffs"], appr_backup["escalations"]) == ([], [])
    assert [s["roles"] for s in api.get("/v1/me/inbox", who="biz").get_json()["signoffs"]] \
        == [["business_owner"]]
    assert api.get("/v1/me/inbox", who="dev").get_json()["proposals"][0][
        "missing_signoffs"] == ["business_owner"]


def test_without_a_token_nothing(api: Api) -> None:
    assert api.client.get("/v1/me").status_code == 401
    assert api.client.get("/v1/me/inbox").status_code == 401
