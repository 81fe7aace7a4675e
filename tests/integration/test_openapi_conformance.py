"""The OpenAPI document says every status and media type each route really answers.

Every operation of /openapi.json is called as an admin, an automation and nobody, with its
path filled with names that exist, names that do not and names with a NUL character, each
query parameter given a value that does not exist, a bad value, a NUL character, and
(where it may be) `markdown`, and bodies empty, wrong, malformed and with a NUL character;
each answer's status and media type must be documented for it.
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

import pytest

from tests.integration.api_fixtures import Api
from tests.integration.conftest import definition

NAME = "refunds"
EXISTING = {"name": NAME, "number": "1"}
MISSING = {"name": "no-such-ruleset", "number": "999"}
NUL_NAMES = {"name": "a%00b", "number": "1", "decision_id": "a%00b", "escalation_id": "a%00b",
             "subscription_id": "a%00b", "delivery_id": "a%00b"}
BODIES: tuple[tuple[Any, str | None], ...] = (
    ({}, "application/json"), ({"unexpected": 1}, "application/json"),
    ({"note": "a\u0000b", "comment": "a\u0000b"}, "application/json"),
    ('{"broken": ', "application/json"), ("plain words", "text/plain"), (None, None))


@pytest.fixture
def active(api: Api) -> None:
    """Version 1 of refunds is active and has decided once (an escalation is open)."""
    assert api.post(f"/v1/rulesets/{NAME}/versions",
                    {"definition": definition()}).status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    assert api.post(f"/v1/rulesets/{NAME}/evaluate",
                    {"input": {"amount": 200000}}).status_code == 200


def _paths(template: str) -> list[str]:
    """The template filled with existing values, then with missing ones."""
    out = []
    for values in (EXISTING, MISSING, NUL_NAMES):
        out.append(re.sub(r"\{(\w+)\}", lambda m, v=values: v.get(m.group(1),  # type: ignore
                                                                  str(uuid.uuid4())), template))
    return out


def _queries(operation: dict[str, Any]) -> list[dict[str, str]]:
    params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    queries: list[dict[str, str]] = [{}]
    for p in params:
        enum = p.get("schema", {}).get("enum", [])
        queries.append({p["name"]: "no-such-thing"})
        queries.append({p["name"]: "-1"})
        queries.append({p["name"]: "a\x00b"})
        for value in enum:
            queries.append({p["name"]: value})
    if any(p["name"] == "format" for p in params):
        # Markdown asked of an unknown resource and with a bad parameter beside it.
        queries.extend({"format": "markdown", p["name"]: "-1"} for p in params
                       if p["name"] != "format")
    return queries


def _undocumented(spec: dict[str, Any], method: str, template: str,
                  response: Any) -> str | None:
    responses = spec["paths"][template][method]["responses"]
    entry = responses.get(str(response.status_code))
    if entry is None:
        return f"status {response.status_code} (documented: {sorted(responses)})"
    content = entry.get("content", {})
    if response.get_data() and response.mimetype not in content:
        return f"{response.status_code} as {response.mimetype} (documented: {sorted(content)})"
    return None


@pytest.mark.usefixtures("active")
def test_every_answer_of_every_route_is_in_the_document(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    wrong: set[str] = set()
    calls = 0
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            bodies = BODIES if "requestBody" in operation else ((None, None),)
            for path, query, (body, mimetype), who in itertools.product(
                    _paths(template), _queries(operation), bodies, ("root", "bot", None)):
                kwargs: dict[str, Any] = {"query_string": query,
                                          "headers": api.headers(who)}
                if body is not None:
                    kwargs["data" if isinstance(body, str) else "json"] = body
                    if isinstance(body, str):
                        kwargs["content_type"] = mimetype
                with api.client.open(path, method=method.upper(), **kwargs) as response:
                    calls += 1
                    problem = _undocumented(spec, method, template, response)
                    if problem:
                        wrong.add(f"{method.upper()} {template} {query}: {problem}")
    assert calls > 500
    assert not wrong, "\n".join(sorted(wrong))


def test_markdown_routes_document_markdown_errors_and_others_answer_json(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    runbook = spec["paths"]["/v1/rulesets/{name}/runbook"]["get"]["responses"]
    for status in ("401", "404", "422"):
        assert set(runbook[status]["content"]) == {"application/json", "text/markdown"}
    # A route without Markdown answers JSON, whatever `format` the caller asks for.
    response = api.get("/v1/decisions?format=markdown")
    assert response.status_code == 422 and response.mimetype == "application/json"
