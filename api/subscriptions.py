"""Subscriptions: who hears of which events, by webhook or email."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.auth import current_principal
from api.notification_schemas import (
    NoBody,
    SubscriptionListSchema,
    SubscriptionRequest,
    SubscriptionSchema,
)
from api.openapi import documented
from api.responses import dump
from api.services import container
from rules_service.services import notifications

bp = Blueprint("subscriptions", __name__, url_prefix="/v1/subscriptions")


@bp.post("")
@documented(body=SubscriptionRequest, responses={201: SubscriptionSchema}, errors=(403, 404))
def create_subscription(body: dict[str, Any]) -> Response:
    """Subscribe a webhook or an email address to event types (admin, or a ruleset owner)."""
    view = notifications.create_subscription(
        container().uow(), url=body["url"], events=body["events"], ruleset=body["ruleset"],
        secret=body["secret"], actor=current_principal().name,
        allow=container().settings.webhook_allow)
    return dump(SubscriptionSchema, view.to_dict(), status=201)


@bp.get("")
@documented(responses={200: SubscriptionListSchema})
def list_subscriptions() -> Response:
    """Subscriptions: every one for an admin, one's own for anyone else."""
    found = notifications.list_subscriptions(container().uow(),
                                             actor=current_principal().name)
    return dump(SubscriptionListSchema, {"subscriptions": [s.to_dict() for s in found]})


@bp.delete("/<subscription_id>")
@documented(body=NoBody, body_optional=True, responses={204: None}, errors=(403, 404))
def delete_subscription(subscription_id: str, body: dict[str, Any]) -> Response:
    """Delete a subscription; its deliveries not yet made are given up."""
    notifications.delete_subscription(container().uow(), subscription_id,
                                      actor=current_principal().name)
    return Response(status=204)
