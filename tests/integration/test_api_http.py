"""The HTTP layer itself: authentication, the error envelope on every route, OpenAPI, docs."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from api import MAX_CONTENT_LENGTH
from rules_service.bootstrap import Container
from rules_service.services import principals
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import definition

NAME = "refunds"
PUBLIC = {"/healthz", "/readyz"}
# The docs take a token or a session (or nobody with RULES_SERVICE_PUBLIC_DOCS): tested below.
DOCS = {"/openapi.json", "/docs", "/docs/static/<path:filename>",
        "/docs/static/rules-service-init.js"}


def concrete(rule: Rule) -> str:
    """The rule's path with plausible values for its arguments."""
    values = {"name": NAME, "number": "1", "decision_id": str(uuid.uuid4()),
              "escalation_id": str(uuid.uuid4()), "filename": "index.css"}

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(2), "x")

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", fill, rule.rule)


def api_rules(app: Flask) -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the API, the public ones (and the pages,
    which use sessions: tests/integration/test_pages_*.py) aside."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in PUBLIC | DOCS \
                or rule.endpoint.startswith("pages."):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, concrete(rule)))
    return sorted(out)


def assert_json_client_error(response: Any, context: str) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (context, response.status_code,
                                                response.data[:300])
    assert response.mimetype == "application/json", (context, response.data[:200])
    return error_of(response)


@pytest.fixture
def active_ruleset(api: Api) -> None:
    """A ruleset whose version 1 is active, so routes get past the lookups."""
    assert api.post(f"/v1/rulesets/{NAME}/versions", {"definition": definition()}).status_code \
        == 201
    for who in ("biz", "appr"):
        assert api.post(f"/v1/rulesets/{NAME}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201


# --------------------------------------------------------------------------- authentication


def test_every_route_but_health_and_docs_needs_a_token(app: Flask, api: Api) -> None:
    routes = api_rules(app)
    assert len(routes) >= 18
    for method, path in routes:
        with app.test_client().open(path, method=method, json={}) as response:
            error = assert_json_client_error(response, f"{method} {path}")
            assert response.status_code == 401, (method, path)
            assert error["code"] == "unauthenticated"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_routes_also_need_a_token_then_are_404(api: Api) -> None:
    assert api.get("/v1/nothing-here", who=None).status_code == 401
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Basic cm9vdDpyb290",
                                    "Bearer", "bearer    ", "Token abc"])
def test_bad_authorization_headers_are_401(api: Api, header: str) -> None:
    response = api.get("/v1/rulesets", who=None, headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert error_of(response)["code"] == "unauthenticated"


def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    token = api.tokens["stranger"]
    response = api.get("/v1/rulesets", who=None, headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_revoked_principal_is_401(api: Api, container: Container) -> None:
    assert api.get("/v1/rulesets", who="dev").status_code == 200
    principals.revoke_principal(container.uow(), "dev")
    response = api.get("/v1/rulesets", who="dev")
    assert response.status_code == 401


def test_reissued_token_works_and_old_one_stays_revoked(api: Api, container: Container) -> None:
    principals.revoke_principal(container.uow(), "dev")
    fresh = principals.issue_token(container.uow(), "dev").token
    assert api.get("/v1/rulesets", who=None,
                   headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    assert api.get("/v1/rulesets", who="dev").status_code == 401


def test_health_needs_no_token_and_checks_the_database(api: Api) -> None:
    response = api.get("/healthz", who=None)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_health_reports_an_unreachable_database(tmp_path: Any) -> None:
    from api import create_app
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings

    c = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        with create_app(container=c).test_client() as client:
            response = client.get("/healthz")
            assert response.status_code == 503
            assert response.get_json()["status"] == "unavailable"
    finally:
        c.close()


# --------------------------------------------------------------------------- error envelope


def test_wrong_method_is_a_json_405(api: Api) -> None:
    response = api.client.delete("/v1/rulesets", headers=api.headers("root"))
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_unexpected_errors_are_a_json_500_and_logged(app: Flask, api: Api,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from rules_service.services import governance

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(governance, "list_rulesets", explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = api.get("/v1/rulesets")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "boom" not in error["message"]
    assert any("boom" in r.getMessage() or (r.exc_info and "boom" in str(r.exc_info[1]))
               for r in caplog.records)


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b'{"input": ', "application/json"),
    ("trailing garbage", b'{"a": 1} x', "application/json"),
    ("NaN", b'{"input": {"amount": NaN}}', "application/json"),
    ("array body", b"[1, 2]", "application/json"),
    ("string body", b'"hello"', "application/json"),
    ("number body", b"12", "application/json"),
    ("null body", b"null", "application/json"),
    ("not UTF-8", b'{"a": "\xff\xfe"}', "application/json"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("form body", b"a=1&b=2", "application/x-www-form-urlencoded"),
    ("empty object", b"{}", "application/json"),
    ("unknown field", b'{"surprise": true}', "application/json"),
]


def wrong_types() -> bytes:
    """A body with every field any request schema knows, each of a wrong type."""
    fields = ["content", "definition", "note", "effective_at", "decision", "comment", "role",
              "to_version", "reason", "input", "inputs", "version", "dry_run", "resolution"]
    return json.dumps({f: [[{"x": None}]] for f in fields}).encode()


@pytest.mark.usefixtures("active_ruleset")
def test_every_route_answers_bad_requests_with_a_json_4xx(app: Flask, api: Api) -> None:
    bodies = [*BAD_BODIES, ("wrong types", wrong_types(), "application/json"),
              ("oversized", b'{"note": "' + b"x" * (MAX_CONTENT_LENGTH + 10) + b'"}',
               "application/json")]
    checked = 0
    for method, path in api_rules(app):
        if method == "GET":
            for query in ("limit=-1&since=yesterday&from=x&impact=0&format=pdf&status=x"
                          "&overdue=maybe&outcome=x&version=x&cursor=%00",
                          "limit=" + "9" * 50, "since=2024-13-45"):
                with api.client.get(f"{path}?{query}", headers=api.headers("root")) as r:
                    assert r.status_code < 500, (path, query, r.data[:300])
                    assert r.mimetype in ("application/json", "text/plain", "text/markdown")
                    if r.status_code >= 400:
                        error_of(r)
                checked += 1
            continue
        for label, data, mimetype in bodies:
            with api.client.open(path, method=method, data=data, content_type=mimetype,
                                 headers=api.headers("root")) as response:
                assert_json_client_error(response, f"{method} {path} with {label}")
                if label == "oversized":
                    assert response.status_code == 413
                    assert error_of(response)["code"] == "payload_too_large"
                elif label in ("array body", "string body", "number body", "null body"):
                    assert response.status_code == 400, (path, label)
                    assert error_of(response)["code"] == "body_not_object"
                elif label in ("malformed JSON", "trailing garbage", "NaN", "not UTF-8",
                               "deep nesting"):
                    assert response.status_code == 400, (path, label)
                    assert error_of(response)["code"] == "malformed_json"
                elif label == "form body":
                    assert response.status_code == 415, (path, label)
            checked += 1
    assert checked > 100


@pytest.mark.usefixtures("active_ruleset")
def test_wrong_types_name_every_field(api: Api) -> None:
    response = api.post(f"/v1/rulesets/{NAME}/evaluate",
                        {"input": "x", "version": "2", "dry_run": "yes", "extra": 1})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert {d["place"] for d in error["details"]} == {"input", "version", "dry_run", "extra"}


# --------------------------------------------------------------------------- OpenAPI and docs


def test_openapi_describes_every_route(app: Flask, api: Api) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http",
                                                                   "scheme": "bearer"}
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/docs") \
                or rule.endpoint.startswith("pages."):
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, (method, path)


def test_openapi_operations_carry_summaries_schemas_and_errors(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    evaluate = spec["paths"]["/v1/rulesets/{name}/evaluate"]["post"]
    assert evaluate["summary"].startswith("Decide one input")
    body_ref = evaluate["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert body_schema["required"] == ["input"]
    assert {"200", "401", "404", "409", "422"} <= set(evaluate["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in evaluate["parameters"])
    decisions = spec["paths"]["/v1/decisions"]["get"]
    assert {p["name"] for p in decisions["parameters"]} >= {"ruleset", "outcome", "since",
                                                           "until", "limit", "cursor"}
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert "Error" in spec["components"]["schemas"]


def test_openapi_declares_markdown_where_a_route_answers_with_it(api: Api) -> None:
    spec = api.get("/openapi.json").get_json()
    for path in ("/v1/rulesets/{name}/diff", "/v1/rulesets/{name}/runbook"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/markdown"}, path
        assert content["text/markdown"]["schema"] == {"type": "string"}


def test_interactive_docs_are_served_from_the_package(api: Api) -> None:
    page = api.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html, "no CDN, no outside assets"
    assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', html)
    assert len(assets) >= 3
    for asset in assets:
        response = api.get(asset)
        assert response.status_code == 200, asset
    init = api.get("/docs/static/rules-service-init.js").get_data(as_text=True)
    assert "/openapi.json" in init
    # Swagger UI would otherwise send the spec to validator.swagger.io from the browser.
    assert "validatorUrl: null" in init
    assert api.get("/docs/static/../../etc/passwd").status_code == 404


def test_interactive_docs_keep_no_token_and_bundle_a_current_dompurify(api: Api) -> None:
    """/docs kept a pasted token in localStorage and bundled DOMPurify 2.3.10."""
    init = api.get("/docs/static/rules-service-init.js").get_data(as_text=True)
    assert "persistAuthorization: false" in init
    bundle = api.get("/docs/static/swagger-ui-bundle.js")
    found = re.search(rb'\.version="(\d+)\.(\d+)\.(\d+)",\w+\.removed', bundle.get_data())
    assert found, "the bundle names its DOMPurify"
    assert tuple(int(part) for part in found.groups()) >= (3, 2, 4)
    assert re.search(rb'PACKAGE_VERSION:"5\.', bundle.get_data()), "Swagger UI 5"


DOCS_PATHS = ("/openapi.json", "/docs", "/docs/static/rules-service-init.js",
              "/docs/static/swagger-ui.css")


def test_the_docs_need_a_token_or_a_session_by_default(app: Flask, api: Api,
                                                       container: Container) -> None:
    """Only /healthz is exempt: the docs are closed unless the setting opens them."""
    assert not container.settings.public_docs
    for path in DOCS_PATHS:
        response = api.get(path, who=None)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), path
        if path == "/docs":
            # A browser gets a page with the way in, not a JSON error.
            assert response.mimetype == "text/html"
            assert 'href="/sign-in?next=/docs"' in response.get_data(as_text=True)
        else:
            assert error_of(response)["code"] == "unauthenticated", path
        assert api.get(path, headers={"Authorization": "Bearer nope"},
                       who=None).status_code == 401, path
        assert api.get(path, who="bot").status_code == 200, path
    spec = api.get("/openapi.json").get_json()
    assert "401" in spec["paths"]["/openapi.json"]["get"]["responses"]
    assert "security" not in spec["paths"]["/openapi.json"]["get"]


def test_a_signed_in_person_reads_the_docs_in_the_browser(app: Flask, container: Container,
                                                          people: dict[str, str]) -> None:
    from rules_service.services import accounts
    from tests.integration.test_pages_sign_in import sign_in

    accounts.set_password(container.uow(), "biz", "correct horse battery")
    with app.test_client() as browser:
        assert browser.get("/docs").status_code == 401
        assert sign_in(browser, "biz", "correct horse battery", "/docs").status_code == 303
        for path in DOCS_PATHS:
            with browser.get(path) as response:
                assert response.status_code == 200, path
        # The session opens the docs only: the API itself still wants a token.
        assert browser.get("/v1/rulesets").status_code == 401
        principals.revoke_principal(container.uow(), "biz")
        assert browser.get("/openapi.json").status_code == 401


def test_the_public_docs_setting_opens_the_docs_to_everyone(container: Container) -> None:
    from dataclasses import replace

    from api import create_app

    container.settings = replace(container.settings, public_docs=True)
    with create_app(container=container).test_client() as client:
        for path in DOCS_PATHS:
            with client.get(path) as response:
                assert response.status_code == 200, path
        spec = client.get("/openapi.json").get_json()
        assert client.get("/v1/rulesets").status_code == 401
    assert spec["paths"]["/openapi.json"]["get"]["security"] == []
    assert "401" not in spec["paths"]["/openapi.json"]["get"]["responses"]


@pytest.mark.usefixtures("active_ruleset")
def test_version_numbers_beyond_the_database_are_refused_not_500(api: Api) -> None:
    """Found by the schemathesis fuzz: `audit?version=60372229132083658752` was a 500 on
    SQLite (an integer beyond the column); every version number a request carries is
    bounded by the spec and refused with 422 naming it."""
    huge = 2**65
    base = f"/v1/rulesets/{NAME}"
    for path, place in ((f"{base}/audit?version={huge}", "version"),
                        (f"{base}/diff?from=1&to={huge}", "to"),
                        (f"{base}/diff?from={huge}&to=1", "from")):
        response = api.get(path)
        assert response.status_code == 422, (path, response.data[:200])
        assert [d["place"] for d in error_of(response)["details"]] == [place]
    for path, body, place in (
            (f"{base}/rollback", {"to_version": huge, "reason": "x"}, "to_version"),
            (f"{base}/evaluate", {"input": {"amount": 1}, "version": huge}, "version"),
            (f"{base}/evaluate-batch", {"inputs": [{"amount": 1}], "version": huge}, "version"),
            (f"{base}/versions", {"definition": definition(7), "base_version": huge},
             "base_version")):
        response = api.post(path, body)
        assert response.status_code == 422, (path, response.data[:200])
        assert [d["place"] for d in error_of(response)["details"]] == [place]
    # In a path, a version number the database cannot hold names no version: 404.
    assert api.get(f"{base}/versions/{2**31}").status_code == 404
    assert api.post(f"{base}/versions/{huge}/signoffs", {"decision": "approve"},
                    who="biz").status_code == 404
    spec = api.get("/openapi.json").get_json()
    assert spec["components"]["schemas"]["RollbackRequest"]["properties"]["to_version"][
        "maximum"] == 2**31 - 1
    [number] = [p for p in spec["paths"]["/v1/rulesets/{name}/versions/{number}"]["parameters"]
                if p["name"] == "number"]
    assert number["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


@pytest.mark.usefixtures("active_ruleset")
def test_a_nul_character_anywhere_is_refused_not_500(api: Api) -> None:
    """Found by the schemathesis fuzz on PostgreSQL, which cannot store NUL in text:
    `/v1/deliveries?subscription=%00` was a 500. A NUL in a query value or a JSON string is
    422 naming its place; in a path it names nothing that exists: 404."""
    spec = api.get("/openapi.json").get_json()
    checked = 0
    for template, operations in spec["paths"].items():
        path = template.replace("{name}", NAME).replace("{number}", "1")
        for p in operations.get("get", {}).get("parameters", []):
            if p["in"] == "query":
                response = api.get(f"{path}?{p['name']}=a%00b")
                assert response.status_code == 422, (path, p["name"], response.data[:200])
                assert [d["place"] for d in error_of(response)["details"]] == [p["name"]]
                checked += 1
    assert checked >= 20
    for path in ("/v1/rulesets/x%00y", "/v1/decisions/x%00y", "/v1/rulesets/x%00y/audit"):
        response = api.get(path)
        assert response.status_code == 404, (path, response.data[:200])
        error_of(response)
    evaluate = api.post(f"/v1/rulesets/{NAME}/evaluate",
                        {"input": {"amount": 1, "note\u0000": ["a\u0000"]}})
    assert evaluate.status_code == 422
    places = [d["place"] for d in error_of(evaluate)["details"]]
    assert places == ["input.note\\u0000", "input.note\\u0000[0]"], places
    propose = api.post(f"/v1/rulesets/{NAME}/versions",
                       {"definition": definition(3), "note": "a\u0000"})
    assert propose.status_code == 422
    assert [d["place"] for d in error_of(propose)["details"]] == ["note"]
