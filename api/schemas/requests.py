"""Schemas of the request bodies and query strings: loaded strictly (unknown fields refused,
no type coercion in JSON bodies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from api.schemas.field_types import (
    MAX_DECISIONS_PAGE,
    MAX_IMPACT_REPLAY,
    OUTCOMES,
    SIGNOFF_DECISIONS,
    TEXT_LIMIT,
    CountedList,
    InputCount,
    QueryBoolean,
    QueryDateTime,
    StrictBoolean,
    UtcAwareDateTime,
    VersionNumber,
)
from rules_service.config import Settings

# --- requests -----------------------------------------------------------------------------


class ProposeVersionRequest(Schema):
    """Body of POST /v1/rulesets/{name}/versions: the YAML text or a definition object."""

    content = fields.String(validate=validate.Length(min=1),
                            metadata={"description": "the ruleset file (YAML or JSON text)"})
    definition = fields.Dict(keys=fields.String(),
                             metadata={"description": "the ruleset as a JSON object"})
    note = fields.String(load_default="", validate=validate.Length(max=TEXT_LIMIT))
    effective_at = UtcAwareDateTime(
        load_default=None, allow_none=True,
        metadata={"description": "when the approved version becomes active (default: at once)"})
    base_version = VersionNumber(
        load_default=None, allow_none=True,
        metadata={"description": "the version the author started from; 409 `stale_base`, "
                                 "naming the versions in between, when a newer one exists"})

    @validates_schema
    def _content_or_definition(self, data: dict[str, Any], **_: Any) -> None:
        given = [k for k in ("content", "definition") if data.get(k) is not None]
        if len(given) != 1:
            raise ValidationError("give exactly one of content (the file text) or definition "
                                  "(a JSON object)", field_name="content")


class SignoffRequest(Schema):
    """Body of POST .../versions/{n}/signoffs."""

    decision = fields.String(required=True, validate=validate.OneOf(SIGNOFF_DECISIONS))
    comment = fields.String(load_default="", validate=validate.Length(max=TEXT_LIMIT))
    role = fields.String(load_default=None, allow_none=True,
                         metadata={"description": "the sign-off role filled (default: the "
                                                  "first unfilled one the signer holds)"})


class WithdrawRequest(Schema):
    """Body of POST .../versions/{n}/withdraw (optional)."""

    comment = fields.String(load_default="", validate=validate.Length(max=TEXT_LIMIT))


class RollbackRequest(Schema):
    """Body of POST /v1/rulesets/{name}/rollback."""

    to_version = VersionNumber(required=True, strict=True)
    reason = fields.String(required=True,
                           validate=validate.Length(min=1, max=TEXT_LIMIT))


class PauseRequest(Schema):
    """Body of POST /v1/rulesets/{name}/pause."""

    reason = fields.String(required=True, validate=validate.Length(min=1, max=TEXT_LIMIT),
                           metadata={"description": "what people are looking at; every "
                                                    "escalation while paused carries it"})


class ResumeRequest(Schema):
    """Body of POST /v1/rulesets/{name}/resume: optional, and has no fields (a body sent
    must still be a JSON object)."""


class EvaluateRequest(Schema):
    """Body of POST /v1/rulesets/{name}/evaluate."""

    input = fields.Dict(keys=fields.String(), required=True)
    version = VersionNumber(load_default=None, allow_none=True, strict=True,
                            metadata={"description": "pin a version (default: the active one)"})
    dry_run = StrictBoolean(load_default=False,
                            metadata={"description": "evaluate without recording"})


class EvaluateBatchRequest(Schema):
    """Body of POST /v1/rulesets/{name}/evaluate-batch.

    ``batch_limit`` (the setting RULES_SERVICE_BATCH_LIMIT) is the most inputs a batch may
    hold; the count is checked before any input is loaded, and the spec says it.
    """

    inputs = CountedList(fields.Dict(keys=fields.String()), required=True)
    version = VersionNumber(load_default=None, allow_none=True, strict=True)
    dry_run = StrictBoolean(load_default=False)

    def __init__(self, *, batch_limit: int = Settings.batch_limit, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_limit = batch_limit
        # Fields are copied per schema instance, so this limit is this instance's alone.
        self.fields["inputs"].validators = [InputCount(min=1, max=batch_limit)]

    @classmethod
    def for_settings(cls, settings: Settings) -> EvaluateBatchRequest:
        """The schema with the configured batch limit."""
        return cls(batch_limit=settings.batch_limit)


class ResolveRequest(Schema):
    """Body of POST /v1/escalations/{id}/resolve."""

    resolution = fields.String(required=True, validate=validate.OneOf(SIGNOFF_DECISIONS))
    comment = fields.String(load_default="", validate=validate.Length(max=TEXT_LIMIT))


# --- query strings --------------------------------------------------------------------------


class DiffQuery(Schema):
    """Query of GET /v1/rulesets/{name}/diff."""

    from_version = VersionNumber(data_key="from", load_default=None,
                                 metadata={"description": "default: the base of `to`"})
    to_version = VersionNumber(data_key="to", load_default=None,
                               metadata={"description": "default: the newest pending version"})
    impact = fields.Integer(load_default=None, validate=validate.Range(min=1,
                                                                      max=MAX_IMPACT_REPLAY),
                            metadata={"description": "replay the last N decisions on `to`"})
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "markdown")),
                           metadata={"description": "`markdown`: a page for approvers"})


class DecisionsQuery(Schema):
    """Query of GET /v1/decisions."""

    ruleset = fields.String(load_default=None)
    outcome = fields.String(load_default=None, validate=validate.OneOf(OUTCOMES))
    since = QueryDateTime(load_default=None,
                          metadata={"description": "ISO 8601 (UTC when no zone), inclusive"})
    until = QueryDateTime(load_default=None,
                          metadata={"description": "ISO 8601 (UTC when no zone), exclusive"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1,
                                                                     max=MAX_DECISIONS_PAGE))
    cursor = fields.String(load_default=None,
                           metadata={"description": "next_cursor of the previous page"})
    caller = fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                           metadata={"description": "the caller's exact name"})
    caller_prefix = fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                                  metadata={"description": "callers whose name starts with it"})
    inputs = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.String(validate=validate.Length(max=TEXT_LIMIT)), load_default=dict,
        data_key="input.FIELD", metadata={
            "description": "give as `input.FIELD=value` (dotted for nested fields), one or "
                           "more: decisions whose input holds that value (`900` matches the "
                           "number 900 and the text \"900\")"})

    @pre_load
    def _input_filters(self, data: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        """``input.amount=900`` parameters gathered into one mapping."""
        out = {k: v for k, v in data.items() if not k.startswith("input.")}
        found = {k[len("input."):]: v for k, v in data.items() if k.startswith("input.")}
        if found:
            out["input.FIELD"] = found
        return out

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since >= until:
            raise ValidationError("must be later than since", field_name="until")


class ExplainQuery(Schema):
    """Query of POST /v1/rulesets/{name}/evaluate and evaluate-batch."""

    explain = QueryBoolean(load_default=False, metadata={
        "description": "true: each decision carries `explanation`, every rule's parts with "
                       "the values they read (dry runs included)"})


class EscalationsQuery(Schema):
    """Query of GET /v1/escalations."""

    status = fields.String(load_default=None, validate=validate.OneOf(("open", "resolved")))
    ruleset = fields.String(load_default=None)
    overdue = QueryBoolean(load_default=False,
                           metadata={"description": "only open escalations past due"})


class RunbookQuery(Schema):
    """Query of GET /v1/rulesets/{name}/runbook."""

    format = fields.String(load_default="json", validate=validate.OneOf(("json", "markdown")))


class AuditQuery(Schema):
    """Query of GET /v1/rulesets/{name}/audit."""

    version = VersionNumber(load_default=None,
                            metadata={"description": "only events of this version"})
