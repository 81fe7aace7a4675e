"""Input that used to reach the database or the clock unchecked and came back as a 500.

Integers wider than the version columns, times with no UTC equivalent, NUL characters
(PostgreSQL holds none in text or JSON): each is a 404 for a path that cannot exist and a
422 naming the field for a body or query value, on SQLite and PostgreSQL alike, and
nothing is recorded.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from flask import Flask

from rules_service.bootstrap import Container
from rules_service.domain.lifecycle import MAX_VERSION_NUMBER
from rules_service.services import accounts
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import definition
from tests.integration.test_api_evaluation import activate, all_decisions
from tests.integration.test_pages_sign_in import PASSWORD, sign_in

BASE = "/v1/rulesets/refunds"

# Beyond a 32-bit column, beyond a 64-bit one, and 29 digits.
TOO_BIG = [2**31, 2**63, 10**28]


@pytest.fixture
def active(api: Api) -> None:
    """Version 1 of refunds is active."""
    activate(api)


def places(response_error: dict[str, object]) -> set[str]:
    details = response_error["details"]
    assert isinstance(details, list)
    return {d["place"] for d in details}


# --------------------------------------------------------------------------- integers


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize("method, suffix, body", [
    ("get", "", None),
    ("post", "/signoffs", {"decision": "approve"}),
    ("post", "/withdraw", {}),
])
def test_a_version_number_no_version_can_have_is_404_in_a_path(
        api: Api, number: int, method: str, suffix: str, body: object) -> None:
    path = f"{BASE}/versions/{number}{suffix}"
    response = api.get(path) if method == "get" else api.post(path, body)
    assert response.status_code == 404, response.data
    assert error_of(response)["code"] == "not_found"


@pytest.mark.usefixtures("active")
def test_the_largest_version_number_is_an_ordinary_unknown_version(api: Api) -> None:
    response = api.get(f"{BASE}/versions/{MAX_VERSION_NUMBER}")
    assert response.status_code == 404
    assert str(MAX_VERSION_NUMBER) in error_of(response)["message"]
    response = api.post(f"{BASE}/evaluate", {"input": {"amount": 1},
                                             "version": MAX_VERSION_NUMBER})
    assert response.status_code == 404, response.data


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize("path, body, place", [
    ("/evaluate", {"input": {"amount": 1}, "version": "N"}, "version"),
    ("/evaluate", {"input": {"amount": 1}, "version": "N", "dry_run": True}, "version"),
    ("/evaluate-batch", {"inputs": [{"amount": 1}], "version": "N"}, "version"),
    ("/rollback", {"to_version": "N", "reason": "back"}, "to_version"),
    ("/versions", {"definition": definition(limit=7), "base_version": "N"}, "base_version"),
])
def test_a_version_number_in_a_body_beyond_the_column_is_422_naming_the_field(
        api: Api, number: int, path: str, body: dict[str, object], place: str) -> None:
    body = {k: (number if v == "N" else v) for k, v in body.items()}
    response = api.post(f"{BASE}{path}", body)
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {place}
    assert all_decisions(api) == []
    assert [v["version"] for v in api.get(f"{BASE}/versions").get_json()["versions"]] == [1]


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize("query, place", [
    ("/diff?from=N&to=1", "from"),
    ("/diff?from=1&to=N", "to"),
    ("/diff?to=1&impact=N", "impact"),
    ("/audit?version=N", "version"),
])
def test_a_version_number_in_a_query_beyond_the_column_is_422_naming_it(
        api: Api, number: int, query: str, place: str) -> None:
    response = api.get(BASE + query.replace("N", str(number)))
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {place}


@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/deliveries"])
def test_a_page_size_beyond_the_column_is_422(api: Api, number: int, path: str) -> None:
    response = api.get(f"{path}?limit={number}")
    assert response.status_code == 422
    assert places(error_of(response)) == {"limit"}


def test_openapi_bounds_the_version_number_in_paths(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    params = spec["paths"]["/v1/rulesets/{name}/versions/{number}"]["parameters"]
    number = next(p for p in params if p["name"] == "number")
    assert number["schema"] == {"type": "integer", "minimum": 1,
                                "maximum": MAX_VERSION_NUMBER}


def test_pages_have_no_address_for_a_version_number_beyond_the_column(
        app: Flask, api: Api, container: Container) -> None:
    activate(api)
    accounts.set_password(container.uow(), "biz", PASSWORD)
    client = app.test_client()
    assert sign_in(client, "biz").status_code == 303
    # No page has that address: the answer for an unknown address (401 for a browser,
    # whose session is no token), never a failing query.
    assert client.get(f"/rulesets/refunds/versions/{2**31}").status_code in (401, 404)
    assert client.get("/rulesets/refunds/versions/1").status_code == 200


# --------------------------------------------------------------------------- times

EDGES = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]


@pytest.mark.parametrize("moment", EDGES)
@pytest.mark.parametrize("path, place", [
    ("/v1/decisions?since=", "since"),
    ("/v1/decisions?until=", "until"),
    ("/v1/dashboard?since=", "since"),
    ("/v1/dashboard?until=", "until"),
])
def test_a_time_with_no_utc_equivalent_in_a_query_is_422_naming_it(
        api: Api, moment: str, path: str, place: str) -> None:
    response = api.get(path + quote(moment))
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {place}


@pytest.mark.parametrize("query, place", [
    ("until=0001-01-01T00:00:00Z", "since"),  # the default start, 7 days before, is no date
    ("until=0001-01-01T00:00:00Z&since=1h", "since"),
    ("until=99999999d", "until"),
    ("until=999999999999999d", "until"),
    ("since=999999999999999d", "since"),
])
def test_a_dashboard_window_beyond_the_calendar_is_422_naming_its_end(
        api: Api, query: str, place: str) -> None:
    response = api.get(f"/v1/dashboard?{query}")
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {place}


@pytest.mark.usefixtures("active")
@pytest.mark.parametrize("moment", EDGES)
def test_an_effective_time_with_no_utc_equivalent_is_422_and_nothing_is_proposed(
        api: Api, moment: str) -> None:
    response = api.post(f"{BASE}/versions", {"definition": definition(limit=7),
                                             "effective_at": moment})
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {"effective_at"}
    assert len(api.get(f"{BASE}/versions").get_json()["versions"]) == 1


@pytest.mark.parametrize("moment", EDGES)
@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/deliveries"])
def test_a_cursor_holding_a_time_with_no_utc_equivalent_is_refused(
        api: Api, moment: str, path: str) -> None:
    cursor = base64.urlsafe_b64encode(f"{moment}|x".encode()).decode().rstrip("=")
    response = api.get(f"{path}?cursor={cursor}")
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {"cursor"}


# --------------------------------------------------------------------------- NUL


@pytest.mark.usefixtures("active")
def test_a_nul_in_a_path_is_404_and_in_a_query_is_422_naming_it(api: Api) -> None:
    for path in ("/v1/rulesets/re%00funds", "/v1/rulesets/re%00funds/versions",
                 "/v1/decisions/%00", "/v1/decisions/a%00"):
        assert api.get(path).status_code == 404, path
    assert api.post("/v1/escalations/%00/resolve",
                    {"resolution": "approve"}).status_code == 404
    for path, place in (("/v1/decisions?ruleset=%00", "ruleset"),
                        ("/v1/escalations?ruleset=re%00funds", "ruleset"),
                        ("/v1/deliveries?subscription=%00", "subscription"),
                        ("/v1/decisions?cursor=%00x", "cursor")):
        response = api.get(path)
        assert response.status_code == 422, (path, response.data)
        assert places(error_of(response)) == {place}


@pytest.mark.usefixtures("active")
def test_a_nul_in_a_body_is_422_naming_where_and_nothing_is_recorded(api: Api) -> None:
    response = api.post(f"{BASE}/versions", {"definition": definition(limit=7),
                                             "note": "a\u0000b"})
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {"note"}
    response = api.post(f"{BASE}/evaluate", {"input": {"amount": 1, "memo": ["x", "\u0000"]}})
    assert response.status_code == 422
    assert places(error_of(response)) == {"input.memo[1]"}
    assert all_decisions(api) == []
    # A backslash followed by u0000 is text, not a NUL: the walk finds nothing to refuse.
    response = api.post(f"{BASE}/evaluate", {"input": {"amount": 1}, "version": 1,
                                             "dry_run": True, "note": "\\u0000"})
    assert response.status_code == 422
    assert places(error_of(response)) == {"note"}  # an unknown field, not a NUL


# --------------------------------------------------------------------------- ruleset text


@pytest.mark.usefixtures("active")
def test_a_control_character_in_proposed_yaml_is_422_with_line_and_column(api: Api) -> None:
    import yaml

    content = yaml.safe_dump(definition(limit=7), sort_keys=False).replace(
        "title: Refunds", "title: Refunds\u000b")
    response = api.post(f"{BASE}/versions", {"content": content})
    assert response.status_code == 422, response.data
    [detail] = error_of(response)["details"]
    assert "U+000B" in detail["message"]
    assert (detail["line"], detail["column"]) == (2, 15)


@pytest.mark.usefixtures("active")
def test_a_condition_nested_a_thousand_deep_is_422_naming_its_rule(api: Api) -> None:
    deep = definition(limit=7)
    deep["rules"][0]["when"] = "not " * 1000 + "amount > 1"
    response = api.post(f"{BASE}/versions", {"definition": deep})
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {"rules[0].when"}


@pytest.mark.usefixtures("active")
def test_a_lone_surrogate_in_a_body_is_422_naming_where(api: Api) -> None:
    response = api.client.post(
        f"{BASE}/versions", data='{"definition": {"name": "refunds"}, "note": "a\\ud800"}',
        headers={**api.headers("root"), "Content-Type": "application/json"})
    assert response.status_code == 422, response.data
    assert places(error_of(response)) == {"note"}
