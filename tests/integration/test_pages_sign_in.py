"""Signing in to the pages: passwords, sessions, CSRF, slow-down, and the API unchanged."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rules_service.bootstrap import Container
from rules_service.domain.errors import NotFound, RequestInvalid
from rules_service.services import accounts
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock, definition

PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: FlaskClient, name: str, password: str = PASSWORD, next_: str = "/"):
    """Posts the sign-in form as a browser would (token from the form)."""
    token = csrf_of(client.get("/sign-in").get_data(as_text=True))
    return client.post("/sign-in", data={"name": name, "password": password,
                                         "csrf_token": token, "next": next_})


@pytest.fixture
def browser(app: Flask, people: dict[str, str], container: Container) -> FlaskClient:
    """A cookie-keeping client; ``biz`` and ``bot`` have passwords set."""
    accounts.set_password(container.uow(), "biz", PASSWORD)
    return app.test_client()


def test_an_unsigned_visitor_is_sent_to_the_sign_in_page(browser: FlaskClient) -> None:
    response = browser.get("/rulesets/refunds?tab=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=")


def test_a_person_signs_in_with_name_and_password_and_gets_a_safe_cookie(
        browser: FlaskClient) -> None:
    response = sign_in(browser, "biz")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = next(c for c in response.headers.getlist("Set-Cookie")
                  if c.startswith("rules_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "Signed in as <strong>biz</strong>" in page.text


def test_the_cookie_is_secure_when_served_over_https(browser: FlaskClient) -> None:
    token = csrf_of(browser.get("/sign-in", base_url="https://localhost").text)
    # Over https the CSRF check also wants the request to come from this site's own page.
    response = browser.post("/sign-in", base_url="https://localhost",
                            headers={"Referer": "https://localhost/sign-in"},
                            data={"name": "biz", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    cookie = next(c for c in response.headers.getlist("Set-Cookie")
                  if c.startswith("rules_session="))
    assert "Secure" in cookie


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
        browser: FlaskClient) -> None:
    wrong = sign_in(browser, "biz", "not the password")
    unknown = sign_in(browser, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong name or password" in wrong.text and "wrong name or password" in unknown.text


def test_a_sign_in_without_the_csrf_token_is_refused(browser: FlaskClient) -> None:
    response = browser.post("/sign-in", data={"name": "biz", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.text


def test_after_repeated_failures_even_the_right_password_must_wait(
        browser: FlaskClient, clock: FakeClock) -> None:
    for _ in range(accounts.FREE_FAILURES):
        assert sign_in(browser, "biz", "wrong password!").status_code == 401
    locked = sign_in(browser, "biz")
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.text
    clock.advance(accounts.FIRST_WAIT + timedelta(seconds=1))
    assert sign_in(browser, "biz").status_code == 303


def test_an_automation_cannot_have_a_password(container: Container,
                                              people: dict[str, str]) -> None:
    with pytest.raises(RequestInvalid, match="automations cannot sign in"):
        accounts.set_password(container.uow(), "bot", PASSWORD)
    with pytest.raises(NotFound):
        accounts.set_password(container.uow(), "nobody", PASSWORD)
    with pytest.raises(RequestInvalid, match="at least"):
        accounts.set_password(container.uow(), "biz", "short")


def test_sign_out_ends_the_session(browser: FlaskClient) -> None:
    sign_in(browser, "biz")
    token = csrf_of(browser.get("/").text)
    signed_out = browser.post("/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 303
    # The browser drops what the site stored (a token /docs once kept in localStorage).
    assert signed_out.headers["Clear-Site-Data"] == '"storage"'
    assert browser.get("/").status_code == 302


def test_a_revoked_person_is_signed_out_at_the_next_page(browser: FlaskClient,
                                                         container: Container) -> None:
    from rules_service.services import principals

    sign_in(browser, "biz")
    principals.revoke_principal(container.uow(), "biz")
    assert browser.get("/").status_code == 302


def test_sign_in_only_redirects_within_the_site(browser: FlaskClient) -> None:
    response = sign_in(browser, "biz", next_="//evil.example/")
    assert response.headers["Location"] == "/"


def test_the_api_keeps_bearer_tokens_and_needs_no_csrf_token(api: Api) -> None:
    assert api.get("/v1/rulesets", who=None).status_code == 401
    response = api.post("/v1/rulesets/refunds/versions", {"definition": {"name": "x"}})
    assert response.status_code == 422  # past authentication and CSRF: the content is checked
    assert "Set-Cookie" not in response.headers


def test_a_nul_character_in_a_page_address_or_form_is_a_422_page_not_500(
        browser: FlaskClient, api: Api) -> None:
    """PostgreSQL cannot hold a NUL in text: `/decisions?ruleset=a%00b` was a 500 there."""
    assert sign_in(browser, "biz").status_code == 303
    for path in ("/decisions?ruleset=a%00b", "/decisions?caller=a%00b",
                 "/escalations?ruleset=a%00b", "/dashboard?ruleset=a%00b"):
        response = browser.get(path)
        assert response.status_code == 422, path
        assert response.mimetype == "text/html" and "NUL" in response.text, path
    # No name has a NUL: such an address matches no page and is answered like any unknown one.
    for path in ("/rulesets/a%00b", "/decisions/a%00b"):
        assert browser.get(path).status_code == browser.get("/no/such/page").status_code, path
    # A version number the database cannot hold matches no page (was a 500 on PostgreSQL):
    # it is answered like any unknown address.
    assert api.post("/v1/rulesets/refunds/versions",
                    {"definition": definition()}).status_code == 201
    assert browser.get("/rulesets/refunds/versions/1").status_code == 200
    assert browser.get(f"/rulesets/refunds/versions/{2**31}").status_code \
        == browser.get("/no/such/page").status_code == 404


def test_the_cookie_is_secure_behind_a_tls_proxy_when_the_setting_says_so(
        container: Container, people: dict[str, str]) -> None:
    """Behind a proxy that terminates TLS the app sees plain http; RULES_SERVICE_SECURE_COOKIES
    marks the cookie Secure all the same."""
    import dataclasses

    from api import create_app
    from rules_service.config import Settings

    accounts.set_password(container.uow(), "biz", PASSWORD)
    settings = dataclasses.replace(container.settings, secure_cookies=True)
    assert Settings.from_env({"RULES_SERVICE_SECURE_COOKIES": "true"}).secure_cookies
    client = create_app(settings, container=container).test_client()
    response = sign_in(client, "biz")
    assert response.status_code == 303
    cookie = next(c for c in response.headers.getlist("Set-Cookie")
                  if c.startswith("rules_session="))
    assert "Secure" in cookie


def test_every_page_forbids_framing_and_foreign_scripts(browser: FlaskClient) -> None:
    """Pages carry a Content-Security-Policy (own scripts and styles only, no framing) and
    the older X-Frame-Options; signed out, signed in, and on an error page alike."""
    answers = [browser.get("/sign-in")]
    assert sign_in(browser, "biz").status_code == 303
    answers += [browser.get("/"), browser.get("/rulesets/no-such-ruleset"),
                browser.get("/decisions?since=not-a-time")]
    assert [a.status_code for a in answers] == [200, 200, 404, 422]
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_no_template_needs_inline_script_or_style() -> None:
    """The policy allows no inline script or style attribute: the templates have none (the
    browser test then proves the pages' script and charts still work under it)."""
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "api" / "pages" / "templates"
    for template in sorted(templates.glob("*.html")):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"\sstyle=|<style|<script(?![^>]*\ssrc=)|\son[a-z]+=", text), \
            template.name
