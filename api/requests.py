"""Reading request bodies and query strings: strict JSON objects, loaded by a schema."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request, request
from marshmallow import Schema
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError
from werkzeug.routing.map import Map
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length

from api.errors import ApiError
from rules_service.domain.errors import RequestInvalid
from rules_service.domain.lifecycle import MAX_VERSION_NUMBER
from rules_service.domain.problems import Problem, preview

JSON_MIMETYPES = ("application/json",)

UNSTORABLE_MESSAGE = ("must not contain a NUL character (\\u0000) or half a surrogate pair "
                      "(\\ud800-\\udfff)")
MAX_NUL_PLACES = 20
"""At most this many places of unstorable characters are named in one answer."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL and lone surrogates: PostgreSQL holds neither in text or JSON, nor does UTF-8."""
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
"""How JSON text spells them (a surrogate pair also matches; the walk then finds none)."""


class VersionNumberConverter(IntegerConverter):
    """``<version:number>`` in a route: 1 up to MAX_VERSION_NUMBER. A larger number cannot
    name a version, so the route does not match (404) rather than the database failing on
    a number wider than its column."""

    def __init__(self, map: Map) -> None:  # werkzeug's parameter name
        super().__init__(map, min=1, max=MAX_VERSION_NUMBER)

    def to_python(self, value: str) -> Any:
        """The number, or 404 at once: a ValidationError would let werkzeug try the same
        path's routes for other methods and answer 405 naming them."""
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


class TextConverter(UnicodeConverter):
    """The default path segment, without NUL: PostgreSQL cannot hold NUL in text, and no
    name or id has one, so such a path is 404 rather than a failing query."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00]")


class _AtMostStream(LimitedStream):
    """A body of at most ``limit`` bytes whose end the server marks (a chunked upload).

    Werkzeug's LimitedStream stops reading at the maximum without looking further, so a
    longer chunked body was cut at 5 MiB and the cut text used. Having read up to the
    maximum, this one asks the server for one byte more: if there is one, 413.
    """

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


class BoundedRequest(Request):
    """Flask's request, with MAX_CONTENT_LENGTH enforced on chunked bodies as well."""

    @cached_property
    def stream(self) -> Any:
        """The body stream; a chunked one longer than the maximum raises 413 when read."""
        environ = self.environ
        if self.max_content_length is not None and not self.shallow \
                and "wsgi.input_terminated" in environ and get_content_length(environ) is None:
            return _AtMostStream(environ["wsgi.input"], self.max_content_length, is_max=True)
        return super().stream


URL_CONVERTERS: dict[str, type] = {
    "version": VersionNumberConverter,
    "default": TextConverter,
    "string": TextConverter,
}
"""Converters create_app installs before any route is added."""


def _unstorable_places(data: Any) -> list[str]:
    # Iterative: a body may be nested as deep as the JSON parser allows.
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(data, "body")]
    while stack and len(found) < MAX_NUL_PLACES:
        value, place = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                found.append(place)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                key_place = key if place == "body" else f"{place}.{key}"
                if _UNSTORABLE.search(key):
                    found.append(key_place)
                stack.append((item, key_place))
        elif isinstance(value, list):
            stack.extend((item, f"{place}[{i}]") for i, item in reversed(list(enumerate(value))))
    return found[:MAX_NUL_PLACES]


def _spelled(place: str) -> str:
    # A place is shown as JSON would spell it: \u0000, never the character itself.
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", place)


def refuse_unstorable(data: Any) -> None:
    """422 naming where a NUL (``\\u0000``) or a lone surrogate (``\\ud800``) is, in a JSON
    body, a query string or a page's form: no field of this service can hold one
    (PostgreSQL refuses them in text and JSON)."""
    found = _unstorable_places(data)
    if found:
        raise RequestInvalid([Problem(preview(_spelled(place)), UNSTORABLE_MESSAGE)
                              for place in found])


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
    if _UNSTORABLE_ESCAPE.search(text):  # only escapes carry them; walk only then
        refuse_unstorable(data)
    return data


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
    refuse_unstorable(query)
    loaded: dict[str, Any] = schema.load(query)
    return loaded
