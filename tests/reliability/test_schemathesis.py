"""Schemathesis over every route of the real app's OpenAPI document.

The app runs on the suite's database (SQLite or PostgreSQL, RULES_SERVICE_TEST_DATABASE)
with the real engine, an active ruleset, a decision, an escalation and a subscription in
it. Every operation is called with generated requests, valid ones and ones that break the
schema, with its path filled by generated values and by names that exist; as an admin
mostly, and as an automation and a plain member too. Every answer must be no 5xx and
match the document: a documented status, a documented media type, a body that fits the
documented schema, and invalid requests refused with a 4xx.

Budget: at most FUZZ_BUDGET_S (3.5 minutes) of calls per database, under 4 minutes with
the setup; RULES_SERVICE_FUZZ_EXAMPLES (default 100) examples per operation, mode and
path choice for the admin, a fifth of that for each lesser caller. Once the budget is
spent no further operation is started, and the test prints how many cases it ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from rules_service.adapters import migrations_runner
from rules_service.bootstrap import Container, bootstrap
from rules_service.config import Settings
from rules_service.services import principals
from tests.conftest import throwaway_database
from tests.integration.conftest import PEOPLE, definition

NAME = "refunds"
FUZZ_BUDGET_S = 210.0
EXAMPLES = int(os.environ.get("RULES_SERVICE_FUZZ_EXAMPLES", "100"))
# (caller, share of the examples): the admin reaches everything; lesser callers check that
# refusals are documented too.
CALLERS = (("root", 1.0), ("bot", 0.2), ("stranger", 0.2))
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]


@dataclass
class World:
    """The app under fuzz, its callers' tokens, and names that exist in its database."""

    app: Flask
    tokens: dict[str, str]
    known: dict[str, str]
    cases: int = 0
    failures: list[str] = field(default_factory=list)


def _seed(app: Flask, tokens: dict[str, str]) -> dict[str, str]:
    """An active ruleset with a decision, an escalation and a subscription; their ids."""
    client = app.test_client()

    def call(method: str, path: str, body: Any, who: str = "root") -> Any:
        response = client.open(path, method=method, json=body,
                               headers={"Authorization": f"Bearer {tokens[who]}"})
        assert response.status_code < 300, (path, response.get_json())
        return response.get_json()

    call("POST", f"/v1/rulesets/{NAME}/versions", {"definition": definition()})
    for who in ("biz", "appr"):
        call("POST", f"/v1/rulesets/{NAME}/versions/1/signoffs", {"decision": "approve"}, who)
    decision = call("POST", f"/v1/rulesets/{NAME}/evaluate", {"input": {"amount": 200000}})
    subscription = call("POST", "/v1/subscriptions",
                        {"url": "https://example.invalid/hook", "events": ["version.proposed"],
                         "ruleset": NAME, "secret": "s" * 32})
    return {"name": NAME, "number": "1", "decision_id": decision["decision_id"],
            "escalation_id": decision["escalation"]["id"],
            "subscription_id": subscription["id"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The real app on a throwaway, migrated database of the suite's kind."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    with throwaway_database(directory) as url:
        migrations_runner.upgrade(url)
        container: Container = bootstrap(Settings(database_url=url, engine_workers=1,
                                                  sqlite_busy_timeout_s=30.0))
        try:
            tokens = {name: principals.add_principal(container.uow(), name, **flags).token
                      for name, flags in PEOPLE.items()}
            app = create_app(container=container)
            yield World(app, tokens, _seed(app, tokens))
        finally:
            container.close()


def _operations(world: World) -> list[Any]:
    loaded = schemathesis.openapi.from_wsgi(
        "/openapi.json", world.app, headers={"Authorization": f"Bearer {world.tokens['root']}"})
    return [result.ok() for result in loaded.get_all_operations()]


def _fuzz(world: World, operation: Any, mode: GenerationMode, who: str, examples: int,
          path_parameters: dict[str, str] | None, deadline: float) -> None:
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else POSITIVE_CHECKS
    # The token is given, not generated: negative cases break the request, not its caller.
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=path_parameters,
        headers={"Authorization": f"Bearer {world.tokens[who]}"})

    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        world.cases += 1
        response = case.call()
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:  # collected, reported at the end
            world.failures.append(f"{operation.method.upper()} {operation.path} as {who} "
                                  f"({mode.value}): {exc}\n{case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation can break its schema (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE


@pytest.mark.timeout(FUZZ_BUDGET_S + 150)
def test_every_route_answers_as_its_document_says(world: World) -> None:
    started = time.monotonic()
    deadline = started + FUZZ_BUDGET_S
    operations = _operations(world)
    assert len(operations) >= 25
    runs = [(operation, who, max(2, int(EXAMPLES * share)), mode, fixed)
            for who, share in CALLERS
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for fixed in (False, True)]
    done = 0
    for operation, who, examples, mode, fixed in runs:
        known = {p: world.known[p] for p in world.known if "{" + p + "}" in operation.path}
        if fixed and not known:
            done += 1
            continue
        if time.monotonic() > deadline:
            break
        _fuzz(world, operation, mode, who, examples, known if fixed else None, deadline)
        done += 1
    elapsed = time.monotonic() - started
    print(f"schemathesis: {world.cases} cases over {len(operations)} operations "
          f"({done} of {len(runs)} runs) in {elapsed:.0f} s; {len(world.failures)} failures")
    assert not world.failures, "\n\n".join(world.failures[:30])
