"""The product story over real HTTP, against `rules-service serve` running as a subprocess.

Principals are created with the CLI, the database is a throwaway one of the suite's kind
(SQLite or PostgreSQL), and every step goes through the network as a real client's would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import (
    ROOT,
    Server,
    free_port,
    migrate_and_add_people,
    running,
    server_env,
)

pytestmark = pytest.mark.e2e

RULESET_FILE = ROOT / "rulesets" / "expense-approval.yaml"
NAME = "expense-approval"
PEOPLE = {
    "admin": ["--admin"],
    "expense-tool": ["--automation"],
    # Every owner the ruleset names, primaries and backups: proposals naming anyone else
    # are refused.
    "finance-lead": [], "finance-deputy": [], "controller": [], "cfo": [],
    "rules-dev": [], "platform-dev": [], "ops-oncall": [], "ops-lead": [],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rules-service serve` on a free port, a fresh database of the suite's kind (SQLite or
    PostgreSQL), principals made with the CLI."""
    workdir = tmp_path_factory.mktemp("e2e")
    with throwaway_database(workdir) as url:
        yield from _serve(workdir, url)


def _serve(workdir: Path, database_url: str) -> Iterator[Server]:
    env = server_env(database_url)

    tokens = migrate_and_add_people(workdir, env, PEOPLE)
    port = free_port()
    with running(["serve", "--host", "127.0.0.1", "--port", str(port)], workdir, env, port,
                 tokens) as server:
        yield server


def test_the_story_of_a_ruleset(server: Server) -> None:
    call = server.call
    content = RULESET_FILE.read_text(encoding="utf-8")
    versions = f"/v1/rulesets/{NAME}/versions"

    # Nobody gets in without a token, the spec included; the health check is open.
    assert call("GET", "/v1/rulesets", who=None)[0] == 401
    assert call("GET", "/openapi.json", who=None)[0] == 401
    assert call("GET", "/healthz", who=None)[0] == 200
    status, spec, _ = call("GET", "/openapi.json")
    assert status == 200 and f"{versions}/{{number}}/signoffs".replace(NAME, "{name}") \
        in spec["paths"]

    # An admin proposes the first version.
    status, v1, _ = call("POST", versions, {"content": content, "note": "first version"})
    assert status == 201, v1
    assert (v1["version"], v1["status"], v1["base_version"]) == (1, "pending", None)

    # The author cannot approve their own change; the owners sign off and it goes live.
    status, error, _ = call("POST", f"{versions}/1/signoffs", {"decision": "approve"})
    assert status == 403 and "author" in error["error"]["message"]
    assert call("POST", f"{versions}/1/signoffs", {"decision": "approve", "comment": "ok"},
                who="finance-lead")[0] == 201
    status, signed, _ = call("POST", f"{versions}/1/signoffs",
                             {"decision": "approve", "comment": "ok"}, who="controller")
    assert status == 201 and signed["status"] == "active"

    # The expense tool asks for decisions; they are recorded and can be read back.
    meal = {"amount": 120, "category": "meals", "has_receipt": True}
    pricier_meal = {"amount": 550, "category": "meals", "has_receipt": True}
    senior_meal = {"amount": 1500, "category": "meals", "has_receipt": True,
                   "employee_level": 9}
    outcomes = {}
    for claim in (meal, pricier_meal, senior_meal):
        status, decision, _ = call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": claim},
                                   who="expense-tool")
        assert status == 200 and decision["version"] == 1, decision
        outcomes[claim["amount"]] = decision["outcome"]
    assert outcomes == {120: "approve", 550: "escalate", 1500: "approve"}
    status, record, _ = call("GET", f"/v1/decisions/{decision['decision_id']}",
                             who="expense-tool")
    assert status == 200
    assert record["outcome"] == "approve" and record["input"]["amount"] == 1500
    assert record["caller"] == "expense-tool"

    # Input that breaks the schema is refused with every field named.
    status, error, _ = call("POST", f"/v1/rulesets/{NAME}/evaluate",
                            {"input": {"amount": -5, "category": "yachts"}}, who="expense-tool")
    assert status == 422
    assert {d["place"] for d in error["error"]["details"]} >= {"input.amount", "input.category"}

    # The maintainer raises the auto-approve limit; the diff shows exactly that, and the
    # replay names the one recorded claim it changes.
    raised = content.replace("auto_approve_limit: 500", "auto_approve_limit: 600", 1)
    assert raised != content
    status, v2, _ = call("POST", versions, {"content": raised, "note": "raise the limit",
                                            "base_version": 1}, who="rules-dev")
    assert status == 201 and v2["base_version"] == 1
    status, diff, _ = call("GET", f"/v1/rulesets/{NAME}/diff?impact=100", who="controller")
    assert status == 200
    assert (diff["from"], diff["to"]) == (1, 2)
    assert [c["kind"] for c in diff["changes"]] == ["threshold_changed"]
    assert diff["summary"] == ["Raised auto_approve_limit from 500 to 600"]
    assert diff["impact"]["replayed"] == 3
    assert diff["impact"]["transitions"] == {"escalate->approve": 1}
    assert [e["input"]["amount"] for e in diff["impact"]["examples"]] == [550]

    # Both owners approve; version 2 becomes active.
    for who in ("finance-lead", "controller"):
        assert call("POST", f"{versions}/2/signoffs", {"decision": "approve"}, who=who)[0] \
            == 201
    assert call("GET", f"/v1/rulesets/{NAME}")[1]["active_version"] == 2

    # A change proposed from the old version 1 would silently undo version 2: refused.
    lowered = content.replace("senior_fast_track_limit: 2000", "senior_fast_track_limit: 1300",
                              1)
    status, error, _ = call("POST", versions, {"content": lowered, "base_version": 1},
                            who="rules-dev")
    assert status == 409 and error["error"]["code"] == "stale_base"
    assert [d["version"] for d in error["error"]["details"]] == [2]

    # Proposed again from version 2, the second change is replayed against version 2:
    # its impact is the senior's claim it now escalates, and only that. The 550 meal,
    # recorded as escalated, was changed by version 2: that is drift, reported apart.
    lowered = raised.replace("senior_fast_track_limit: 2000", "senior_fast_track_limit: 1300",
                             1)
    status, v3, _ = call("POST", versions, {"content": lowered, "note": "tighten fast track",
                                            "base_version": 2}, who="rules-dev")
    assert status == 201 and v3["version"] == 3, v3
    status, diff, _ = call("GET", f"/v1/rulesets/{NAME}/diff?impact=100", who="controller")
    assert status == 200 and (diff["from"], diff["to"]) == (2, 3)
    assert diff["summary"] == ["Lowered senior_fast_track_limit from 2000 to 1300"]
    impact = diff["impact"]
    assert impact["replayed"] == 3 and impact["changed"] == 1
    assert impact["transitions"] == {"approve->escalate": 1}
    assert [e["input"]["amount"] for e in impact["examples"]] == [1500]
    assert impact["drift"] == 1 and impact["drift_transitions"] == {"escalate->approve": 1}
    assert diff["undoes"] == []

    # The approver reads the same as a page, and signs; so does the business owner.
    status, page, content_type = call("GET", f"/v1/rulesets/{NAME}/diff?impact=100"
                                             f"&format=markdown", who="controller")
    assert status == 200 and content_type.startswith("text/markdown")
    assert "Lowered senior_fast_track_limit from 2000 to 1300" in page
    assert "| approve → escalate | 1 |" in page and "escalate → approve" not in page.split(
        "Not this change's doing")[0]
    for who in ("finance-lead", "controller"):
        status, signed, _ = call("POST", f"{versions}/3/signoffs", {"decision": "approve"},
                                 who=who)
        assert status == 201, signed
    assert signed["status"] == "active"
    assert call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": senior_meal},
                who="expense-tool")[1]["outcome"] == "escalate"

    # Operations rolls back to version 2, with a reason.
    status, rolled, _ = call("POST", f"/v1/rulesets/{NAME}/rollback",
                             {"to_version": 2, "reason": "fast track tightened too early"},
                             who="ops-oncall")
    assert status == 200 and rolled["active_version"] == 2
    assert call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": senior_meal},
                who="expense-tool")[1]["version"] == 2

    # The audit trail tells the whole story.
    status, audit, _ = call("GET", f"/v1/rulesets/{NAME}/audit", who="expense-tool")
    assert status == 200
    story = [(e["version"], e["action"], e["actor"]) for e in audit["events"]]
    assert story[0] == (1, "proposed", "admin")
    assert (1, "activated", "controller") in story
    assert (2, "proposed", "rules-dev") in story
    assert (2, "activated", "controller") in story
    assert (3, "activated", "controller") in story
    assert story[-1] == (2, "rolled_back", "ops-oncall")

    # And the runbook reads as Markdown for the people on call.
    status, text, content_type = call("GET", f"/v1/rulesets/{NAME}/runbook?format=markdown",
                                      who="ops-oncall")
    assert status == 200 and content_type.startswith("text/markdown")
    assert text.startswith("# Runbook: Expense approval")
