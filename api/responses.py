"""Responses dumped through their schemas, so clients get exactly what the spec says."""

from __future__ import annotations

import functools
from typing import Any

from flask import Response, jsonify
from marshmallow import Schema


@functools.cache
def _schema(schema_class: type[Schema]) -> Schema:
    return schema_class()


def dump(schema_class: type[Schema], data: Any, status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """``data`` dumped by the schema as a JSON response."""
    response = jsonify(_schema(schema_class).dump(data))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
