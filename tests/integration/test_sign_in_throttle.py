"""The sign-in slow-down under attack: parallel guesses, other addresses, unknown names, and
the password check kept outside every transaction (on SQLite: outside the write lock)."""

from __future__ import annotations

import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from rules_service.bootstrap import Container
from rules_service.services import accounts
from tests.integration.test_pages_sign_in import PASSWORD, csrf_of

HOME, ELSEWHERE = "192.0.2.10", "198.51.100.7"


@pytest.fixture
def biz(container: Container, people: dict[str, str]) -> str:
    accounts.set_password(container.uow(), "biz", PASSWORD)
    return "biz"


def attempt(container: Container, name: str, password: str, address: str = HOME) -> int:
    """The status the page would answer: 200 signed in, 401 refused, 429 must wait."""
    try:
        accounts.sign_in_with_password(container.uow(), name, password, address)
    except accounts.SignInRefused:
        return 401
    except accounts.SignInLocked:
        return 429
    return 200


def page_text(html: str, name: str) -> str:
    """The page without the name typed in and the form's CSRF token."""
    return re.sub(r'name="csrf_token" value="[^"]+"', "", html.replace(name, "NAME"))


def failures_counted(container: Container, name: str) -> int:
    with container.engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(sum(failures), 0) FROM sign_in_throttles "
                                 "WHERE name = :name"), {"name": name}).scalar_one()


def test_parallel_wrong_passwords_are_each_counted_and_each_wait(
        container: Container, biz: str) -> None:
    """24 simultaneous wrong passwords on PostgreSQL all got 401 and the count rose to 3."""
    guesses = 16
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: attempt(container, biz, f"wrong guess {i}"),
                                range(guesses)))
    assert sorted(answers) == [401] * accounts.FREE_FAILURES \
        + [429] * (guesses - accounts.FREE_FAILURES)
    assert failures_counted(container, biz) == accounts.FREE_FAILURES


def test_guesses_from_one_address_do_not_lock_out_another(container: Container,
                                                          biz: str) -> None:
    for _ in range(accounts.FREE_FAILURES):
        assert attempt(container, biz, "wrong password!", ELSEWHERE) == 401
    assert attempt(container, biz, PASSWORD, ELSEWHERE) == 429
    assert attempt(container, biz, PASSWORD, HOME) == 200


def test_an_unknown_name_is_throttled_and_answered_like_a_known_one(
        app: Flask, biz: str) -> None:
    """The 429 confirmed that a name exists: now any name gets the same answers."""
    pages: dict[str, list[Any]] = {}
    for name in (biz, "nobody"):
        client = app.test_client()
        token = csrf_of(client.get("/sign-in").text)
        pages[name] = [client.post("/sign-in", data={"name": name, "password": "wrong one!!",
                                                     "csrf_token": token})
                       for _ in range(accounts.FREE_FAILURES + 1)]
    for known, unknown in zip(pages[biz], pages["nobody"], strict=True):
        assert known.status_code == unknown.status_code
        assert page_text(known.text, biz) == page_text(unknown.text, "nobody")
    assert [p.status_code for p in pages["nobody"]][-2:] == [401, 429]


def test_the_password_check_runs_outside_any_transaction(
        container: Container, biz: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the ~200 ms check ran inside the write lock, even for unknown names, and
    six clients posting to /sign-in stalled decision recording."""
    checked: list[str] = []
    real_verify = PasswordHasher.verify
    uow = container.uow()

    def verify(self: PasswordHasher, password_hash: Any, password: Any) -> bool:
        with pytest.raises(RuntimeError, match="not entered"):
            uow.session  # noqa: B018 - no transaction is open during the check
        if container.engine.dialect.name == "sqlite":
            # Another process can take the write lock at once (timeout 0).
            other = sqlite3.connect(container.engine.url.database, timeout=0,
                                    isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            finally:
                other.close()
        checked.append(password)
        return real_verify(self, password_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    for name, password in ((biz, "wrong password!"), ("nobody", "any password"),
                           (biz, PASSWORD)):
        with pytest.raises(accounts.SignInRefused) if password != PASSWORD else _no_error():
            accounts.sign_in_with_password(uow, name, password, HOME)
    # An unknown name is checked against a dummy hash: it costs what a known one costs.
    assert checked == ["wrong password!", "any password", PASSWORD]


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_signing_in_forgets_only_that_address_and_a_new_password_forgets_all(
        container: Container, biz: str) -> None:
    assert attempt(container, biz, "wrong password!", HOME) == 401
    assert attempt(container, biz, "wrong password!", ELSEWHERE) == 401
    assert attempt(container, biz, PASSWORD, HOME) == 200
    assert failures_counted(container, biz) == 1
    accounts.set_password(container.uow(), biz, PASSWORD + "!")
    assert failures_counted(container, biz) == 0


def test_the_page_throttles_by_the_client_address(app: Flask, biz: str) -> None:
    def client(address: str) -> tuple[FlaskClient, str]:
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = address
        return c, csrf_of(c.get("/sign-in").text)

    attacker, token = client(ELSEWHERE)
    for _ in range(accounts.FREE_FAILURES + 2):
        attacker.post("/sign-in", data={"name": biz, "password": "wrong password!",
                                        "csrf_token": token})
    person, token = client(HOME)
    response = person.post("/sign-in", data={"name": biz, "password": PASSWORD,
                                             "csrf_token": token})
    assert response.status_code == 303
