"""`make run`'s server as a new user meets it: the README's calls work, and the service
survives its engine workers being killed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import ROOT, Server, free_port, running, server_env
from tests.integration.notify_support import WAIT_S, Receiver

pytestmark = pytest.mark.e2e

CLAIM = {"amount": 1800, "category": "hardware", "has_receipt": True}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rules-service demo` on a free port and a throwaway database of the suite's kind."""
    workdir = tmp_path_factory.mktemp("demo")
    tokens_path = workdir / "instance" / "demo-tokens.json"
    port = free_port()
    args = ["demo", "--port", str(port), "--rulesets", str(ROOT / "rulesets"),
            "--tokens", str(tokens_path)]
    with throwaway_database(workdir) as url, \
            running(args, workdir, server_env(url), port) as server:
        server.tokens.update(json.loads(tokens_path.read_text()))
        yield server


def test_the_readme_evaluate_call_names_the_deciding_rule_and_opens_an_escalation(
        demo: Server) -> None:
    status, decision, _ = demo.call("POST", "/v1/rulesets/expense-approval/evaluate",
                                    {"input": CLAIM}, who="demo-automation")
    assert status == 200, decision
    assert decision["outcome"] == "escalate"
    assert decision["deciding_rules"] == ["over-manager-limit"]
    assert decision["escalation"]["to_role"] == "approver"


def test_the_readme_diff_call_shows_the_pending_change_in_a_sentence(demo: Server) -> None:
    status, diff, _ = demo.call("GET", "/v1/rulesets/expense-approval/diff?impact=100",
                                who="demo-automation")
    assert status == 200, diff
    assert diff["summary"] == ["Raised auto_approve_limit from 500 to 750"]
    assert diff["impact"]["replayed"] >= 0


def test_the_docs_and_metrics_are_served(demo: Server) -> None:
    # The demo opens its docs (RULES_SERVICE_PUBLIC_DOCS=true), so the printed address works
    # in a browser as it is; the API itself still needs a token.
    status, page, content_type = demo.call("GET", "/docs", who=None)
    assert status == 200 and "text/html" in content_type and "swagger-ui" in page
    status, spec, _ = demo.call("GET", "/openapi.json", who=None)
    assert status == 200 and spec["paths"]["/openapi.json"]["get"]["security"] == []
    assert demo.call("GET", "/v1/rulesets", who=None)[0] == 401
    status, text, _ = demo.call("GET", "/metrics", who="demo-automation")
    assert status == 200 and "rules_service_decisions_total" in text


def _engine_workers(server_pid: int) -> list[int]:
    """Process ids of the engine workers below the server (its grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"rules_service.engine.worker" in cmdline or int(fields[1]) == server_pid:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    workers = []
    for gunicorn_worker in children.get(server_pid, []):
        workers += children.get(gunicorn_worker, [])
    return workers


def test_the_service_survives_its_engine_workers_being_killed(demo: Server) -> None:
    assert demo.process is not None
    call = ("POST", "/v1/rulesets/expense-approval/evaluate", {"input": CLAIM})
    assert demo.call(*call, who="demo-automation")[0] == 200
    workers = _engine_workers(demo.process.pid)
    assert workers, "no engine worker found below the server"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)

    outcomes = [demo.call(*call, who="demo-automation") for _ in range(5)]

    assert all(status == 200 for status, _, _ in outcomes)
    # Dead workers are replaced: the engine decides again, no fallback needed.
    assert outcomes[-1][1]["fallback"] is False
    assert outcomes[-1][1]["deciding_rules"] == ["over-manager-limit"]
    assert demo.process.poll() is None


def test_the_worker_started_beside_the_server_delivers_without_anyone_polling(
        demo: Server, receiver: Receiver) -> None:
    status, made, _ = demo.call("POST", "/v1/subscriptions", {
        "url": receiver.url, "events": ["escalation.opened"], "ruleset": "expense-approval",
        "secret": "a-long-enough-shared-secret"}, who="demo-admin")
    assert status == 201, made
    status, decision, _ = demo.call("POST", "/v1/rulesets/expense-approval/evaluate",
                                    {"input": CLAIM}, who="demo-automation")
    assert status == 200 and decision["outcome"] == "escalate"
    # Earlier escalations may be told too (the subscription is new, the worker may lag);
    # wait, bounded, until this one arrives.
    wanted = decision["escalation"]["id"]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        told = {json.loads(r.body)["data"]["escalation_id"] for r in receiver.accepted()}
        if wanted in told:
            break
        receiver.arrived.wait(0.5)
        receiver.arrived.clear()
    told = {json.loads(r.body)["data"]["escalation_id"] for r in receiver.accepted()}
    assert wanted in told
