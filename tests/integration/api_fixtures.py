"""Fixtures for the HTTP API tests: the app over the test container, a client, callers.

Imported by tests/integration/conftest.py so every integration test module can use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api import create_app
from rules_service.bootstrap import Container


@pytest.fixture
def app(container: Container) -> Flask:
    """The Flask app over the test database and fake clock."""
    flask_app = create_app(container=container)
    flask_app.config["TESTING"] = True
    return flask_app


@dataclass
class Api:
    """A test client that calls the API as a named principal."""

    client: FlaskClient
    tokens: dict[str, str]

    def headers(self, who: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Authorization for ``who`` (None: no header) plus any extra headers."""
        out = dict(extra or {})
        if who is not None:
            out["Authorization"] = f"Bearer {self.tokens[who]}"
        return out

    def get(self, path: str, who: str | None = "root", **kw: Any) -> TestResponse:
        """GET as ``who``."""
        headers = self.headers(who, kw.pop("headers", None))
        with self.client.get(path, headers=headers, **kw) as response:
            response.get_data()
            return response

    def post(self, path: str, body: Any = None, who: str | None = "root",
             **kw: Any) -> TestResponse:
        """POST a JSON body as ``who``."""
        headers = self.headers(who, kw.pop("headers", None))
        if body is not None:
            kw["json"] = body
        with self.client.post(path, headers=headers, **kw) as response:
            response.get_data()
            return response


@pytest.fixture
def api(app: Flask, people: dict[str, str]) -> Iterator[Api]:
    """Calls the app as any of the test principals (``root`` by default)."""
    with app.test_client() as client:
        yield Api(client, people)


def error_of(response: TestResponse) -> dict[str, Any]:
    """The ``error`` object of an error response (asserting the envelope's shape)."""
    assert response.mimetype == "application/json", response.data[:200]
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], list)
    return dict(error)
