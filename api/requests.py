"""Reading request bodies and query strings: strict JSON objects, loaded by a schema."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema

from api.errors import ApiError
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.problems import Problem

JSON_MIMETYPES = ("application/json",)


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, whatever Python's json module accepts by default.
    raise ValueError(f"{name} is not allowed in JSON")


def _is_json_mimetype(mimetype: str) -> bool:
    return mimetype in JSON_MIMETYPES or mimetype.endswith("+json")


def read_json_object(*, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; 400 when it is malformed or not an object."""
    mimetype = request.mimetype
    raw = request.get_data(cache=True)  # beyond MAX_CONTENT_LENGTH this raises 413
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "missing_body", "the request needs a JSON object as its body")
    if mimetype and not _is_json_mimetype(mimetype):
        raise ApiError(415, "unsupported_media_type",
                       f"the body must be JSON (Content-Type: application/json), not {mimetype}")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json",
                       f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                       f"column {exc.colno})",
                       [{"place": "body", "message": exc.msg, "line": exc.lineno,
                         "column": exc.colno}]) from None
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body_not_object",
                       f"the body must be a JSON object, not {_json_kind(data)}")
    refuse_nul(data)
    return data


NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def _nul_places(value: Any, place: str, out: list[str]) -> None:
    """Where a NUL character hides in a parsed JSON value (keys included); PostgreSQL
    cannot store one in text, and no name or value here means anything with one."""
    if isinstance(value, str):
        if NUL in value:
            out.append(place)
    elif isinstance(value, dict):
        for key, item in value.items():
            here = f"{place}.{key}" if place else str(key)
            if NUL in key:
                out.append(here.replace(NUL, "\\u0000"))
            _nul_places(item, here.replace(NUL, "\\u0000"), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _nul_places(item, f"{place}[{i}]", out)


def refuse_nul(data: Any) -> None:
    """422 naming every place of a JSON value whose text holds a NUL character."""
    places: list[str] = []
    _nul_places(data, "", places)
    if places:
        raise RequestInvalid([Problem(place or "body", NUL_MESSAGE)
                              for place in dict.fromkeys(places)])


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def load_body(schema: Schema, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body loaded by ``schema``; ValidationError (422) names every bad field."""
    loaded: dict[str, Any] = schema.load(read_json_object(allow_empty=allow_empty))
    return loaded


def load_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by ``schema``; a repeated parameter is refused."""
    args = request.args
    repeated = sorted(k for k in args if len(args.getlist(k)) > 1)
    if repeated:
        raise ApiError(422, "validation_failed", "a query parameter was given more than once",
                       [{"place": k, "message": "give this parameter once"} for k in repeated])
    query = args.to_dict()
    refuse_nul(query)
    loaded: dict[str, Any] = schema.load(query)
    return loaded
