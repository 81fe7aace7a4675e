"""Helpers of the HTTP API tests: a client that calls as a named principal, and the error
envelope of an answer (the ``app`` and ``api`` fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


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
