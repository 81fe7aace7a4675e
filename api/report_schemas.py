"""Schemas of the weekly report's route: its query and the report."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.ops_schemas import DashboardRulesetFiguresSchema


class WeeklyReportQuery(Schema):
    """Query of GET /v1/reports/weekly."""

    week = fields.String(load_default=None, metadata={
        "description": "a day (YYYY-MM-DD) of the week to report, Monday 00:00 to Monday "
                       "00:00 UTC; default the last complete week"})
    ruleset = fields.String(load_default=None,
                            metadata={"description": "only this ruleset (default: all)"})


class WeekSchema(Schema):
    """A week: [start, end), both Mondays at 00:00 UTC."""

    start = fields.String(required=True)
    end = fields.String(required=True)


class ReportFigureSchema(Schema):
    """One figure of a week beside the week before."""

    figure = fields.String(required=True, metadata={
        "description": "decisions, cycle_time, exception_rate, approval_delay, fallbacks "
                       "or hours_saved"})
    label = fields.String(required=True)
    this_week = fields.Float(allow_none=True, metadata={
        "description": "null when the week has no value (no decisions, say)"})
    week_before = fields.Float(allow_none=True)
    direction = fields.String(required=True, metadata={
        "description": "up, down, same, or none when either week has no value"})
    difference = fields.Float(allow_none=True, metadata={
        "description": "in percentage points for a rate, else in percent of the week "
                       "before"})
    unit = fields.String(required=True)
    words = fields.String(required=True)
    sentence = fields.String(required=True, metadata={
        "description": "e.g. exception rate 12.0% (up from 8.0%, +4.0 percentage points)"})


class HoldersSchema(Schema):
    """A role's primary and backup."""

    primary = fields.String(required=True)
    backup = fields.String(allow_none=True)


class ReportDashboardSchema(Schema):
    """The dashboard's figures of the ruleset for each of the two weeks."""

    this_week = fields.Nested(DashboardRulesetFiguresSchema, required=True)
    week_before = fields.Nested(DashboardRulesetFiguresSchema, required=True)


class RulesetReportSchema(Schema):
    """One ruleset's week beside the week before."""

    ruleset = fields.String(required=True)
    title = fields.String(required=True)
    active_version = fields.Integer(allow_none=True)
    owners = fields.Dict(keys=fields.String(), values=fields.Nested(HoldersSchema),
                         required=True, metadata={
                             "description": "business_owner and operations_owner"})
    recipients = fields.List(fields.String(), required=True, metadata={
        "description": "who receives it by email when it is sent"})
    headline = fields.String(required=True)
    decisions_per_hour = fields.Float(allow_none=True)
    figures = fields.List(fields.Nested(ReportFigureSchema), required=True)
    dashboard = fields.Nested(ReportDashboardSchema, required=True)


class WeeklyReportSchema(Schema):
    """GET /v1/reports/weekly: each ruleset's figures of a week beside the week before."""

    week = fields.Nested(WeekSchema, required=True)
    previous_week = fields.Nested(WeekSchema, required=True)
    comparison = fields.String(required=True)
    generated_at = fields.String(required=True)
    rulesets = fields.List(fields.Nested(RulesetReportSchema), required=True)
