"""The authority table (who may do what), row by row, through HTTP."""

from __future__ import annotations

import pytest

from tests.integration.api_fixtures import Api
from tests.integration.conftest import definition

BASE = "/v1/rulesets/refunds"
EVERYONE = ["root", "bot", "dev", "dev-backup", "biz", "biz-backup", "ops", "ops-backup",
            "appr", "appr-backup", "stranger"]


@pytest.fixture
def two_versions(api: Api) -> None:
    """Version 1 superseded, version 2 active (proposed by dev), version 3 pending (by dev)."""
    for number, (limit, author) in enumerate(((100, "root"), (200, "dev")), start=1):
        assert api.post(f"{BASE}/versions", {"definition": definition(limit)},
                        who=author).status_code == 201
        for who in ("biz", "appr"):
            assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                            who=who).status_code == 201
    assert api.post(f"{BASE}/versions", {"definition": definition(300)}, who="dev"
                    ).status_code == 201


ALLOWED = {
    "propose": {"root", "dev", "dev-backup", "biz", "biz-backup"},
    "sign off": {"biz", "biz-backup", "appr", "appr-backup"},
    "roll back": {"root", "ops", "ops-backup", "biz", "biz-backup"},
    "resolve": {"root", "appr", "appr-backup"},
}


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize("who", EVERYONE)
def test_everyone_authenticated_evaluates_and_reads(api: Api, who: str) -> None:
    assert api.post(f"{BASE}/evaluate", {"input": {"amount": 1}}, who=who).status_code == 200
    for path in ("/v1/rulesets", BASE, f"{BASE}/versions", f"{BASE}/versions/2",
                 f"{BASE}/diff", f"{BASE}/runbook", f"{BASE}/audit", "/v1/decisions",
                 "/v1/escalations"):
        assert api.get(path, who=who).status_code == 200, (who, path)


@pytest.mark.usefixtures("two_versions")
@pytest.mark.parametrize("who", EVERYONE)
def test_who_may_propose_sign_off_roll_back_and_resolve(api: Api, who: str) -> None:
    outcomes = {}
    outcomes["propose"] = api.post(f"{BASE}/versions", {"definition": definition(400)},
                                   who=who).status_code
    outcomes["sign off"] = api.post(f"{BASE}/versions/3/signoffs", {"decision": "reject"},
                                    who=who).status_code
    outcomes["roll back"] = api.post(f"{BASE}/rollback", {"to_version": 1, "reason": "test"},
                                     who=who).status_code
    escalation = api.post(f"{BASE}/evaluate", {"input": {"amount": 900}}).get_json()
    outcomes["resolve"] = api.post(f"/v1/escalations/{escalation['escalation']['id']}/resolve",
                                   {"resolution": "approve"}, who=who).status_code
    expected = {action: ({201, 200} if who in allowed else {403})
                for action, allowed in ALLOWED.items()}
    for action, status in outcomes.items():
        assert status in expected[action], (who, action, status)
