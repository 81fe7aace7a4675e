"""Marshmallow schemas of the notification routes: subscriptions, the
delivery log, and the webhook body every receiver gets."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from rules_service.domain.notifications import DELIVERY_STATES, EVENT_TYPES

MAX_DELIVERIES_PAGE = 1000


class SubscriptionRequest(Schema):
    """Body of POST /v1/subscriptions."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                        metadata={"description": "https://... (a webhook) or mailto:address"})
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_TYPES)))
    ruleset = fields.String(load_default=None, allow_none=True,
                            metadata={"description": "one ruleset, or null for every ruleset "
                                                     "(admins only)"})
    secret = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=200),
                           metadata={"description": "webhooks: the HMAC-SHA256 key, at least "
                                                    "16 characters; never shown again"})


class NoBody(Schema):
    """No fields: the body may be left out, or be `{}`."""


class SubscriptionSchema(Schema):
    """A subscription (never its secret)."""

    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    ruleset = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})


class SubscriptionListSchema(Schema):
    """GET /v1/subscriptions."""

    subscriptions = fields.List(fields.Nested(SubscriptionSchema))


class WebhookEventSchema(Schema):
    """The JSON body POSTed to a webhook. Headers: `X-Rules-Event` (the type),
    `X-Rules-Delivery` (the delivery id), `X-Rules-Timestamp` (unix seconds) and
    `X-Rules-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. A retry sends the
    same body: deduplicate by `id`."""

    id = fields.String(metadata={"description": "the event id, the same on every retry"})
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))
    occurred_at = fields.String(metadata={"format": "date-time"})
    ruleset = fields.String(allow_none=True)
    data = fields.Dict(metadata={"description": "version events: version, actor, comment, "
                                                "details; escalation events: escalation_id, "
                                                "decision_id, version, to_role, due_at (and "
                                                "step, notify for overdue; resolution, "
                                                "resolved_by for resolved)"})


class DeliverySchema(Schema):
    """One event to one target, and how its delivery went."""

    id = fields.String()
    event_id = fields.String()
    event = fields.String()
    subscription = fields.String(allow_none=True,
                                 metadata={"description": "null for a default recipient"})
    recipient = fields.String(allow_none=True,
                              metadata={"description": "the principal told by default"})
    target = fields.String()
    state = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    delivered_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    payload = fields.Nested(WebhookEventSchema)


class DeliveryPageSchema(Schema):
    """GET /v1/deliveries."""

    deliveries = fields.List(fields.Nested(DeliverySchema))
    next_cursor = fields.String(allow_none=True)


class DeliveriesQuery(Schema):
    """Query of GET /v1/deliveries."""

    state = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATES))
    event = fields.String(load_default=None, validate=validate.OneOf(EVENT_TYPES))
    subscription = fields.String(load_default=None)
    limit = fields.Integer(load_default=100,
                           validate=validate.Range(min=1, max=MAX_DELIVERIES_PAGE))
    cursor = fields.String(load_default=None,
                           metadata={"description": "next_cursor of the previous page"})
