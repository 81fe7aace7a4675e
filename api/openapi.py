"""OpenAPI 3 built from the routes themselves, and interactive docs served without a CDN.

Views carry their request and response schemas through ``@documented``; the spec is built
by walking ``app.url_map``, so a route cannot exist undocumented by accident and the body
a view validates is the body the spec describes.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TypeVar, cast

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from marshmallow import Schema, fields

from api.requests import load_body, load_query
from api.schemas import ErrorSchema
from api.services import EXTENSION, container
from rules_service.config import Settings
from rules_service.domain.lifecycle import MAX_VERSION_NUMBER
from rules_service.services.phases import phase

F = TypeVar("F", bound=Callable[..., Any])

SchemaForSettings = Callable[[Settings], Schema]
"""A request schema that depends on the settings (e.g. the batch limit): built per app."""

OPENAPI_VERSION = "3.0.3"
SECURITY_SCHEME = "bearerAuth"

# Error statuses every authenticated route can answer with: the token is looked up in the
# database, which may be out of reach.
COMMON_ERRORS = (401, 503)
MARKDOWN = "text/markdown"
ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or a body that is not a JSON object",
    401: "Missing, invalid or revoked bearer token",
    403: "Authenticated but not allowed; the message gives the reason",
    404: "No such resource (or a filter such as `?ruleset=` names one that does not exist, "
         "or a name in the path holds a NUL character)",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Body is not JSON",
    422: "The request (or the input) breaks the schema; every problem is in details",
    503: "The database cannot be reached",
}


@dataclass(frozen=True)
class ApiDoc:
    """What ``@documented`` records about a view."""

    body: Schema | SchemaForSettings | None = None
    query: Schema | None = None
    responses: Mapping[int, Schema | str | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    auth: bool = True
    body_optional: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    text_alternatives: Mapping[int, str] = field(default_factory=dict)

    def body_schema(self, settings: Settings) -> Schema | None:
        """The body's schema under ``settings``."""
        if self.body is None or isinstance(self.body, Schema):
            return self.body
        return _schema_for(self.body, settings)


@functools.cache
def _schema_for(factory: SchemaForSettings, settings: Settings) -> Schema:
    return factory(settings)


def _instance(schema: type[Schema] | Schema | None) -> Schema | None:
    if schema is None or isinstance(schema, Schema):
        return schema
    return schema()


def _body_instance(schema: type[Schema] | Schema | SchemaForSettings | None
                   ) -> Schema | SchemaForSettings | None:
    if isinstance(schema, type):
        return schema()
    return schema


def documented(*, body: type[Schema] | Schema | SchemaForSettings | None = None,
               query: type[Schema] | Schema | None = None,
               responses: Mapping[int, type[Schema] | Schema | str | None] | None = None,
               errors: tuple[int, ...] = (), auth: bool = True, body_optional: bool = False,
               headers: Mapping[str, str] | None = None,
               text_alternatives: Mapping[int, str] | None = None) -> Callable[[F], F]:
    """Describes a view for the spec and loads its body/query into ``body=``/``query=``.

    A response given as a string is a media type with a plain-text body (e.g. markdown).
    ``text_alternatives`` names a further media type (text body) a status may answer with,
    beside its JSON schema (``{200: "text/markdown"}`` for ``format=markdown``).
    ``body`` may be a function of the settings returning the schema (built once per
    settings), for bodies whose limits are configurable.
    """
    body_schema, query_schema = _body_instance(body), _instance(query)
    doc = ApiDoc(
        body=body_schema, query=query_schema,
        responses={status: (s if isinstance(s, str) else _instance(s))
                   for status, s in (responses or {}).items()},
        errors=tuple(errors), auth=auth, body_optional=body_optional,
        headers=dict(headers or {}), text_alternatives=dict(text_alternatives or {}),
    )

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with phase("body"):
                if query_schema is not None:
                    kwargs["query"] = load_query(query_schema)
                if body_schema is not None:
                    schema = doc.body_schema(container().settings)
                    assert schema is not None
                    kwargs["body"] = load_body(schema, allow_empty=body_optional)
            return view(*args, **kwargs)

        wrapper.apidoc = doc  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 0},
    "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION_NUMBER},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        schema = dict(_CONVERTER_TYPES.get(match.group("converter") or "", {"type": "string"}))
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
        return "{" + name + "}"

    return _ARGUMENT.sub(replace, rule), params


def _summary(view: Callable[..., Any]) -> tuple[str, str]:
    lines = (view.__doc__ or "").strip().splitlines()
    summary = lines[0].strip() if lines else view.__name__.replace("_", " ")
    description = "\n".join(line.strip() for line in lines[1:]).strip()
    return summary, description


def _error_response(status: int, doc: ApiDoc) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": "Error"}}
    if status < 500 and MARKDOWN in doc.text_alternatives.values():
        # A route that answers Markdown answers its errors in Markdown too when asked
        # (api.errors.handle_exception).
        content[MARKDOWN] = {"schema": {"type": "string"}}
    return {"description": ERROR_DESCRIPTIONS.get(status, "Error"), "content": content}


def _operation(endpoint: str, view: Callable[..., Any], doc: ApiDoc,
               settings: Settings) -> dict[str, Any]:
    summary, description = _summary(view)
    op: dict[str, Any] = {"operationId": endpoint, "summary": summary,
                          "tags": [endpoint.split(".", 1)[0]] if "." in endpoint else []}
    if description:
        op["description"] = description
    parameters: list[dict[str, Any]] = []
    if doc.query is not None:
        parameters.append({"in": "query", "schema": doc.query})
    for name, text in doc.headers.items():
        parameters.append({"in": "header", "name": name, "required": False,
                           "description": text, "schema": {"type": "string"}})
    if parameters:
        op["parameters"] = parameters
    if doc.body is not None:
        op["requestBody"] = {"required": not doc.body_optional,
                             "content": {"application/json": {
                                 "schema": doc.body_schema(settings)}}}
    responses: dict[str, Any] = {}
    for status, schema in sorted(doc.responses.items()):
        entry: dict[str, Any] = {"description": "Success" if status < 300 else "Response"}
        if isinstance(schema, str):
            entry["content"] = {schema: {"schema": {"type": "string"}}}
        elif schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        if status in doc.text_alternatives:
            entry.setdefault("content", {})[doc.text_alternatives[status]] = {
                "schema": {"type": "string"}}
        responses[str(status)] = entry
    errors = set(doc.errors)
    auth = doc.auth and not (endpoint in DOCS_ENDPOINTS and settings.public_docs)
    if auth:
        errors.update(COMMON_ERRORS)
    if doc.body is not None:
        errors.update((400, 413, 415, 422))
    if doc.query is not None:
        errors.add(422)
    for status in sorted(errors):
        responses.setdefault(str(status), _error_response(status, doc))
    op["responses"] = responses
    if not auth:
        op["security"] = []
    return op


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3 document of every documented route of ``app``."""
    try:
        version = package_version("rules-service")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        version = "0.0.0"
    spec = APISpec(
        title="rules-service", version=version, openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "Versioned, owner-approved business rules: propose, sign off, "
                             "activate, evaluate, and audit."},
        security=[{SECURITY_SCHEME: []}],
    )
    spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    settings: Settings = app.extensions[EXTENSION].settings
    paths: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        doc = getattr(view, "apidoc", None)
        if view is None or not isinstance(doc, ApiDoc):
            continue
        path, params = _openapi_path(rule.rule)
        _, operations = paths.setdefault(path, (params, {}))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(rule.endpoint, view, doc, settings)
    for path, (params, operations) in paths.items():
        spec.path(path=path, parameters=params or None, operations=operations)
    return spec.to_dict()


# --- the routes: the spec and the interactive docs -------------------------------------

bp = Blueprint("docs", __name__)

_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{base}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{base}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{base}/swagger-ui-bundle.js"></script>
  <script src="{base}/rules-service-init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "%s",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
"""


def swagger_ui_directory() -> Path:
    """Swagger UI's files, vendored from npm's swagger-ui-dist (version in its VERSION)."""
    return Path(__file__).resolve().parent / "static" / "swagger-ui"


class OpenApiDocumentSchema(Schema):
    """An OpenAPI 3 document (this one)."""

    openapi = fields.String()
    info = fields.Dict()
    paths = fields.Dict()
    components = fields.Dict()


@bp.get("/openapi.json")
@documented(responses={200: OpenApiDocumentSchema})
def openapi_json() -> Response:
    """The OpenAPI 3 description of this API."""
    spec = current_app.extensions.get("rules_service.openapi")
    if spec is None:
        spec = build_spec(current_app)
        current_app.extensions["rules_service.openapi"] = spec
    return jsonify(spec)


@bp.get("/docs")
def docs_index() -> Response:
    """Interactive API documentation (Swagger UI)."""
    page = _DOCS_PAGE.format(title=html.escape("rules-service API"), base="/docs/static")
    return Response(page, mimetype="text/html")


@bp.get("/docs/static/rules-service-init.js")
def docs_init() -> Response:
    """Points Swagger UI at this service's spec."""
    return Response(_DOCS_INIT % "/openapi.json", mimetype="application/javascript")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    """Swagger UI's own files, vendored in this package."""
    return send_from_directory(swagger_ui_directory(), filename, max_age=3600)


DOCS_PAGE_ENDPOINT = "docs.docs_index"
DOCS_ENDPOINTS = frozenset({"docs.openapi_json", DOCS_PAGE_ENDPOINT, "docs.docs_init",
                            "docs.docs_static"})
"""The docs: a bearer token or a signed-in session, or nothing with RULES_SERVICE_PUBLIC_DOCS."""
