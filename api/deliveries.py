"""The delivery log: what was sent where, how it went, and a retry for dead deliveries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from api.auth import current_principal
from api.notification_schemas import (
    DeliveriesQuery,
    DeliveryPageSchema,
    DeliverySchema,
    NoBody,
)
from api.openapi import documented
from api.responses import dump
from api.services import container
from rules_service.services import notifications

bp = Blueprint("deliveries", __name__, url_prefix="/v1/deliveries")


@bp.get("")
@documented(query=DeliveriesQuery, responses={200: DeliveryPageSchema})
def list_deliveries(query: dict[str, Any]) -> Response:
    """Deliveries, newest first; filter by state, event or subscription."""
    found, next_cursor = notifications.list_deliveries(
        container().uow(), actor=current_principal().name, state=query["state"],
        event=query["event"], subscription=query["subscription"], limit=query["limit"],
        cursor=query["cursor"])
    return dump(DeliveryPageSchema, {"deliveries": [d.to_dict() for d in found],
                                     "next_cursor": next_cursor})


@bp.post("/<delivery_id>/retry")
@documented(body=NoBody, body_optional=True, responses={202: DeliverySchema},
            errors=(403, 404, 409))
def retry_delivery(delivery_id: str, body: dict[str, Any]) -> Response:
    """Queue a dead delivery again (admin, or the subscription's creator)."""
    view = notifications.retry_delivery(container().uow(), delivery_id,
                                        actor=current_principal().name)
    return dump(DeliverySchema, view.to_dict(), status=202)
