"""Schemas of the operations routes: the dashboard's query and figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from api.schemas import in_utc
from api.schemas.shadow import InShadowSchema
from rules_service.domain.lifecycle import parse_duration


class MomentOrAge(fields.Field):
    """An ISO 8601 moment (naive ones are UTC), or an age such as ``24h``, ``30m``, ``7d``."""

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 datetime or an age like 24h, 30m or 7d.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> datetime | timedelta:
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        text = value.strip()
        try:
            age = parse_duration(text)
        except ValueError:
            pass
        else:
            if age <= timedelta(0):
                raise ValidationError("An age must be longer than zero.")
            return age
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise self.make_error("invalid") from None
        return in_utc(moment)


class DashboardQuery(Schema):
    """Query of GET /v1/dashboard."""

    ruleset = fields.String(load_default=None,
                            metadata={"description": "only this ruleset (default: all)"})
    since = MomentOrAge(load_default=None, metadata={
        "type": "string",
        "description": "start of the window, inclusive: ISO 8601 (naive is UTC) or an age "
                       "before `until` such as 24h, 30m, 7d; default 7 days before `until`"})
    until = MomentOrAge(load_default=None, metadata={
        "type": "string",
        "description": "end of the window, exclusive: ISO 8601 or an age before now; "
                       "default now"})

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if isinstance(since, datetime) and isinstance(until, datetime) and since >= until:
            raise ValidationError("must be later than since", field_name="until")


# --- the figures ------------------------------------------------------------------------


class DashboardWindowSchema(Schema):
    """The window the figures cover: [since, until)."""

    since = fields.String(required=True)
    until = fields.String(required=True)
    hours = fields.Float(required=True)


class DashboardRollupWindowSchema(Schema):
    """The whole minutes the figures read from the rollups: [since, until), both ends on
    the minute (a window ending now holds the current minute)."""

    since = fields.String(required=True)
    until = fields.String(required=True)


class DashboardThroughputSchema(Schema):
    """Recorded decisions in the window."""

    count = fields.Integer(required=True)
    per_hour = fields.Float(allow_none=True)


class DashboardLatencySchema(Schema):
    """Evaluation latency (duration_ms of recorded decisions): percentiles from the latency
    histogram (see ``percentile_method``: in the same bucket as the nearest-rank value),
    exact mean and max."""

    p50 = fields.Float(allow_none=True)
    p95 = fields.Float(allow_none=True)
    p99 = fields.Float(allow_none=True)
    mean = fields.Float(allow_none=True)
    max = fields.Float(allow_none=True)


class DashboardOutcomeFigureSchema(Schema):
    """How many decisions had an outcome, and their share (null when there were none)."""

    count = fields.Integer(required=True)
    share = fields.Float(allow_none=True)


class DashboardFallbackSchema(Schema):
    """Decisions the engine could not make, settled by the ruleset's fallback."""

    count = fields.Integer(required=True)
    rate = fields.Float(allow_none=True)


class DashboardCycleTimeSchema(Schema):
    """Durations in seconds: count, p50/p95 from the cycle-time histogram (see
    ``percentile_method``), exact mean and max."""

    count = fields.Integer(required=True)
    p50 = fields.Float(allow_none=True)
    p95 = fields.Float(allow_none=True)
    mean = fields.Float(allow_none=True)
    max = fields.Float(allow_none=True)


class DashboardStageDelaySchema(Schema):
    """Durations in seconds of one lifecycle stage: count, median, mean, max."""

    count = fields.Integer(required=True)
    median = fields.Float(allow_none=True)
    mean = fields.Float(allow_none=True)
    max = fields.Float(allow_none=True)


class DashboardEscalationFiguresSchema(Schema):
    """Escalations: raised and resolved in the window; open and overdue now."""

    raised = fields.Integer(required=True)
    open = fields.Integer(required=True, metadata={"description": "open now"})
    overdue = fields.Integer(required=True, metadata={"description": "open now, past due_at"})
    resolved = fields.Integer(required=True)
    resolved_within_target = fields.Integer(required=True)
    resolved_within_target_rate = fields.Float(allow_none=True)
    resolution_time_seconds = fields.Nested(DashboardCycleTimeSchema, required=True)
    response_time_target = fields.String(allow_none=True, metadata={
        "description": "the active runbook's escalation.response_time_target (per ruleset)"})
    response_time_target_seconds = fields.Float(allow_none=True)
    breached = fields.Integer(required=True, metadata={
        "description": "escalations due in the window that passed their response-time "
                       "target while open (marked by the worker)"})


class DashboardChangeApprovalSchema(Schema):
    """Change approval delay: proposed -> approved -> active, by completion in the window."""

    proposed = fields.Integer(required=True)
    proposed_to_approved_seconds = fields.Nested(DashboardStageDelaySchema, required=True)
    approved_to_active_seconds = fields.Nested(DashboardStageDelaySchema, required=True)
    proposed_to_active_seconds = fields.Nested(DashboardStageDelaySchema, required=True)


class DashboardImpactSchema(Schema):
    """Business impact: auto-decided decisions x minutes saved each, as hours."""

    auto_decided = fields.Integer(required=True, metadata={
        "description": "outcome approve or reject, not a fallback: no person needed"})
    minutes_saved_per_auto_decision = fields.Float(allow_none=True, metadata={
        "description": "the active version's impact figure (per ruleset)"})
    hours_saved = fields.Float(required=True)


class DashboardFiguresSchema(Schema):
    """The figures of one ruleset, or of all together."""

    pending_versions = fields.Integer(required=True)
    scheduled_versions = fields.Integer(required=True)
    decisions = fields.Nested(DashboardThroughputSchema, required=True)
    latency_ms = fields.Nested(DashboardLatencySchema, required=True)
    outcomes = fields.Dict(keys=fields.String(), values=fields.Nested(DashboardOutcomeFigureSchema),
                           required=True)
    exception_rate = fields.Float(allow_none=True,
                                  metadata={"description": "share of escalated decisions"})
    fallbacks = fields.Nested(DashboardFallbackSchema, required=True)
    escalations = fields.Nested(DashboardEscalationFiguresSchema, required=True)
    change_approval = fields.Nested(DashboardChangeApprovalSchema, required=True)
    impact = fields.Nested(DashboardImpactSchema, required=True)


class DashboardPausedSchema(Schema):
    """Decisions taken while paused in the window (people decided them), and the paused
    periods overlapping it (per ruleset)."""

    decisions = fields.Integer(required=True)
    periods = fields.List(fields.Dict(), metadata={
        "description": "since, until (null while paused), by, reason, resumed_by"})


class DashboardRulesetFiguresSchema(DashboardFiguresSchema):
    """The figures of one ruleset."""

    paused = fields.Nested(DashboardPausedSchema, required=True)

    ruleset = fields.String(required=True)
    title = fields.String(required=True)
    active_version = fields.Integer(allow_none=True)


class DashboardOverallFiguresSchema(DashboardFiguresSchema):
    """The figures of every ruleset shown, together."""

    paused = fields.Nested(DashboardPausedSchema, required=True)

    rulesets = fields.Integer(required=True)


class DashboardSchema(Schema):
    """GET /v1/dashboard: the operations figures for a window, per ruleset and overall."""

    window = fields.Nested(DashboardWindowSchema, required=True)
    rollup_window = fields.Nested(DashboardRollupWindowSchema, required=True)
    percentile_method = fields.String(required=True, metadata={
        "description": "how percentiles are estimated from histogram buckets, and the error"})
    generated_at = fields.String(required=True)
    ruleset = fields.String(allow_none=True)
    overall = fields.Nested(DashboardOverallFiguresSchema, required=True)
    rulesets = fields.List(fields.Nested(DashboardRulesetFiguresSchema), required=True)
    in_shadow = fields.List(fields.Nested(InShadowSchema), required=True, metadata={
        "description": "the versions running in shadow now, with their counts so far"})
