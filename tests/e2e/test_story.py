"""The product story over real HTTP, against `rules-service serve` running as a subprocess.

Principals are created with the CLI, the database is a throwaway one of the suite's kind
(SQLite or PostgreSQL), and every step goes through the network as a real client's would.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import ROOT, Server, cli_command, free_port, running, server_env

pytestmark = pytest.mark.e2e

RULESET_FILE = ROOT / "rulesets" / "expense-approval.yaml"
NAME = "expense-approval"
PEOPLE = {
    "admin": ["--admin"],
    "expense-tool": ["--automation"],
    "finance-lead": [], "controller": [], "rules-dev": [], "ops-oncall": [],
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

    def run(*args: str) -> str:
        done = subprocess.run([*cli_command(), *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    run("db", "upgrade")
    tokens = {name: run("principals", "add", name, *flags).strip().splitlines()[-1]
              for name, flags in PEOPLE.items()}
    port = free_port()
    with running(["serve", "--host", "127.0.0.1", "--port", str(port)], workdir, env, port,
                 tokens) as server:
        yield server


def test_the_story_of_a_ruleset(server: Server) -> None:
    call = server.call
    content = RULESET_FILE.read_text(encoding="utf-8")
    versions = f"/v1/rulesets/{NAME}/versions"

    # Nobody gets in without a token; the health check and the spec are open.
    assert call("GET", "/v1/rulesets", who=None)[0] == 401
    assert call("GET", "/healthz", who=None)[0] == 200
    status, spec, _ = call("GET", "/openapi.json", who=None)
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

    # The expense tool asks for a decision; it is recorded and can be read back.
    claim = {"amount": 120, "category": "meals", "has_receipt": True}
    status, decision, _ = call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": claim},
                               who="expense-tool")
    assert status == 200, decision
    assert decision["version"] == 1 and decision["outcome"] == "approve"
    status, record, _ = call("GET", f"/v1/decisions/{decision['decision_id']}",
                             who="expense-tool")
    assert status == 200
    assert record["outcome"] == "approve" and record["input"]["amount"] == 120
    assert record["caller"] == "expense-tool"

    # Input that breaks the schema is refused with every field named.
    status, error, _ = call("POST", f"/v1/rulesets/{NAME}/evaluate",
                            {"input": {"amount": -5, "category": "yachts"}}, who="expense-tool")
    assert status == 422
    assert {d["place"] for d in error["error"]["details"]} >= {"input.amount", "input.category"}

    # The maintainer raises the auto-approve limit; the diff shows exactly that.
    changed = re.sub(r"auto_approve_limit: 500", "auto_approve_limit: 600", content)
    assert changed != content
    status, v2, _ = call("POST", versions, {"content": changed, "note": "raise the limit"},
                         who="rules-dev")
    assert status == 201 and v2["base_version"] == 1
    status, diff, _ = call("GET", f"/v1/rulesets/{NAME}/diff?impact=100", who="controller")
    assert status == 200
    assert (diff["from"], diff["to"]) == (1, 2)
    assert [c["kind"] for c in diff["changes"]] == ["threshold_changed"]
    assert "auto_approve_limit" in diff["summary"][0]
    assert diff["impact"]["replayed"] == 1

    # Both owners approve; version 2 becomes active.
    for who in ("finance-lead", "controller"):
        assert call("POST", f"{versions}/2/signoffs", {"decision": "approve"}, who=who)[0] \
            == 201
    assert call("GET", f"/v1/rulesets/{NAME}")[1]["active_version"] == 2

    # Operations rolls back to version 1, with a reason.
    status, rolled, _ = call("POST", f"/v1/rulesets/{NAME}/rollback",
                             {"to_version": 1, "reason": "limit raised too early"},
                             who="ops-oncall")
    assert status == 200 and rolled["active_version"] == 1
    assert call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": claim},
                who="expense-tool")[1]["version"] == 1

    # The audit trail tells the whole story.
    status, audit, _ = call("GET", f"/v1/rulesets/{NAME}/audit", who="expense-tool")
    assert status == 200
    story = [(e["version"], e["action"], e["actor"]) for e in audit["events"]]
    assert story[0] == (1, "proposed", "admin")
    assert (1, "activated", "controller") in story
    assert (2, "proposed", "rules-dev") in story
    assert (2, "activated", "controller") in story
    assert story[-1] == (1, "rolled_back", "ops-oncall")

    # And the runbook reads as Markdown for the people on call.
    status, text, content_type = call("GET", f"/v1/rulesets/{NAME}/runbook?format=markdown",
                                      who="ops-oncall")
    assert status == 200 and content_type.startswith("text/markdown")
    assert text.startswith("# Runbook: Expense approval")
