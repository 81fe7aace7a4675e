"""Two instances on one database: what one changes, the other serves within the bound.

Each instance keeps the active versions and the token hashes in memory (services.live).
These tests change them through instance A (or the CLI, a third process) and check that
instance B, with two gunicorn workers of its own, serves the change once the freshness
bound has passed: every request after it, whichever worker answers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from rules_service.services.live import FRESHNESS_BOUND_S
from tests.conftest import throwaway_database
from tests.e2e.support import (
    ROOT,
    Server,
    free_port,
    migrate_and_add_people,
    run_cli,
    running,
    server_env,
)

pytestmark = pytest.mark.e2e

NAME = "expense-approval"
CONTENT = (ROOT / "rulesets" / f"{NAME}.yaml").read_text(encoding="utf-8")
PEOPLE = {"admin": ["--admin"], "expense-tool": ["--automation"],
          # every owner the ruleset names, primaries and backups
          "finance-lead": [], "finance-deputy": [], "ops-oncall": [], "ops-lead": [],
          "controller": [], "cfo": [], "rules-dev": [], "platform-dev": []}
EVALUATE = f"/v1/rulesets/{NAME}/evaluate"
REQUESTS_AFTER_THE_BOUND = 12  # enough to reach both of B's workers


class Instances:
    """Instance A and instance B on one database, and the CLI beside them."""

    def __init__(self, a: Server, b: Server, run: Callable[..., str]) -> None:
        self.a, self.b, self.run = a, b, run


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    """Two `rules-service serve` processes (B with two workers) on one fresh database."""
    workdir: Path = tmp_path_factory.mktemp("two")
    with throwaway_database(workdir) as url, ExitStack() as stack:
        env = server_env(url)

        tokens = migrate_and_add_people(workdir, env, PEOPLE)
        port_a, port_b = free_port(), free_port()
        a = stack.enter_context(running(
            ["serve", "--host", "127.0.0.1", "--port", str(port_a)], workdir, env, port_a,
            tokens))
        b = stack.enter_context(running(
            ["serve", "--host", "127.0.0.1", "--port", str(port_b), "--workers", "2"],
            workdir, env, port_b, tokens))
        yield Instances(a, b, functools.partial(run_cli, workdir, env))


def _activate(server: Server, content: str) -> int:
    status, body, _ = server.call("POST", f"/v1/rulesets/{NAME}/versions",
                                  {"content": content, "note": "e2e"})
    assert status == 201, body
    number = int(body["version"])
    for who in ("finance-lead", "controller"):
        status, body, _ = server.call("POST", f"/v1/rulesets/{NAME}/versions/{number}/signoffs",
                                      {"decision": "approve", "comment": "ok"}, who=who)
        assert status == 201, body
    return number


def _versions_served(server: Server, count: int = REQUESTS_AFTER_THE_BOUND) -> set[int]:
    seen = set()
    for _ in range(count):
        status, body, _ = server.call("POST", EVALUATE, {"input": {"amount": 20,
                                                                   "category": "meals"}},
                                      who="expense-tool")
        assert status == 200, body
        seen.add(body["version"])
    return seen


def test_activation_and_rollback_through_one_instance_reach_the_other_within_the_bound(
        instances: Instances) -> None:
    a, b = instances.a, instances.b
    first = _activate(a, CONTENT)
    time.sleep(FRESHNESS_BOUND_S)
    assert _versions_served(b) == {first}

    second = _activate(a, CONTENT.replace("title: ", "title: Revised ", 1))
    time.sleep(FRESHNESS_BOUND_S)
    assert _versions_served(b) == {second}

    status, body, _ = a.call("POST", f"/v1/rulesets/{NAME}/rollback",
                             {"to_version": first, "reason": "back"}, who="ops-oncall")
    assert status == 200, body
    time.sleep(FRESHNESS_BOUND_S)
    assert _versions_served(b) == {first}
    status, body, _ = b.call("GET", f"/v1/decisions?ruleset={NAME}&limit=1000")
    assert status == 200


def test_a_token_revoked_by_the_cli_is_refused_by_every_instance_within_the_bound(
        instances: Instances) -> None:
    a, b = instances.a, instances.b
    instances.run("principals", "add", "short-lived", "--automation")
    token = instances.run("principals", "token", "short-lived").strip().splitlines()[-1]
    for server in (a, b):
        server.tokens["short-lived"] = token
        assert server.call("GET", "/v1/rulesets", who="short-lived")[0] == 200
    instances.run("principals", "revoke", "short-lived")
    time.sleep(FRESHNESS_BOUND_S)
    for server in (a, b):
        for _ in range(REQUESTS_AFTER_THE_BOUND // 2):
            assert server.call("GET", "/v1/rulesets", who="short-lived")[0] == 401
