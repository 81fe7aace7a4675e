"""Responses dumped through their schemas, so clients get exactly what the spec says."""

from __future__ import annotations

import functools
from typing import Any

from flask import Response, jsonify
from marshmallow import Schema

from rules_service.services.phases import phase


@functools.cache
def _schema(schema_class: type[Schema]) -> Schema:
    return schema_class()


def dump(schema_class: type[Schema], data: Any, status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """``data`` dumped by the schema as a JSON response."""
    return json_response(_schema(schema_class).dump(data), status, headers)


def json_response(data: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """``data``, already in its documented shape, as a JSON response: for the hot paths,
    whose views build exactly the schema's fields (no per-object schema work)."""
    with phase("response"):
        response = jsonify(data)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
