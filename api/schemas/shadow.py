"""Schemas of shadow mode: the PUT body and the GET answer."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate


class JsonNumber(fields.Float):
    """A JSON number: never a string, a boolean, NaN or an infinity."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("must be a number")
        if not math.isfinite(value):
            raise ValidationError("must be a finite number")
        return float(value)


class ShadowRequest(Schema):
    """Body of PUT /v1/rulesets/{name}/versions/{n}/shadow."""

    sample = JsonNumber(required=True, validate=validate.Range(
        min=0, max=1, min_inclusive=False,
        error="must be greater than 0 and at most 1"), metadata={
        "description": "the share of the ruleset's decisions the version decides in shadow "
                       "(1: every one); chosen by decision id, so a recount finds the same"})
    alert_above = JsonNumber(load_default=None, allow_none=True, validate=validate.Range(
        min=0, max=1, max_inclusive=False, error="must be from 0 up to (not including) 1"),
        metadata={"description": "the disagreement rate above which `version.shadow_diverged` "
                                 "is told, once (the business owner or an admin sets it)"})


class ShadowExampleSchema(Schema):
    """A decision the version in shadow decided differently."""

    decision_id = fields.String()
    active_outcome = fields.String(metadata={"description": "what the caller was answered"})
    shadow_outcome = fields.String(metadata={"description": "what the version in shadow "
                                                            "decided"})


class ShadowSchema(Schema):
    """A version's shadow: its counts so far and examples of disagreement."""

    version = fields.Integer()
    since = fields.String(metadata={"description": "when the shadow started (ISO 8601)"})
    sample = fields.Float()
    decisions = fields.Integer(metadata={"description": "sampled decisions the version "
                                                        "looked at (refused inputs included)"})
    disagreements = fields.Integer()
    by_change = fields.Dict(keys=fields.String(), values=fields.Integer(),
                            metadata={"description": "e.g. {\"escalate->approve\": 3}"})
    examples = fields.List(fields.Nested(ShadowExampleSchema))
    not_shadowed = fields.Integer(metadata={
        "description": "sampled decisions shed under overload, never decided in shadow"})
    input_rejected = fields.Integer(metadata={
        "description": "sampled decisions whose input the version's schema refuses"})
    fallbacks = fields.Integer()
    disagreement_rate = fields.Float()
    alert_above = fields.Float(allow_none=True)
    alerted_at = fields.String(allow_none=True)
    running = fields.Boolean()
    started_by = fields.String()
    ended_at = fields.String(allow_none=True)
    ended_by = fields.String(allow_none=True)
    end_reason = fields.String(allow_none=True, metadata={
        "description": "stopped, activated, rejected, withdrawn, stale or restarted"})
    caught_up_to = fields.String(metadata={
        "description": "every sampled decision stamped before this time is counted"})


class InShadowSchema(Schema):
    """A version running in shadow now, in short."""

    ruleset = fields.String()
    version = fields.Integer()
    since = fields.String(metadata={"format": "date-time"})
    sample = fields.Float()
    decisions = fields.Integer()
    disagreements = fields.Integer()
    disagreement_rate = fields.Float()
    not_shadowed = fields.Integer()
