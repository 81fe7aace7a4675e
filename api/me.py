"""The caller and what waits for them."""

from __future__ import annotations

from flask import Blueprint, Response

from api.auth import current_principal
from api.openapi import documented
from api.responses import dump
from api.schemas import InboxSchema, MeSchema
from api.services import container
from rules_service.services import inbox

bp = Blueprint("me", __name__, url_prefix="/v1/me")


@bp.get("")
@documented(responses={200: MeSchema})
def me() -> Response:
    """Who the caller is and every role they hold, primary or backup.

    The roles come from each ruleset's active version (or its pending first version).
    """
    return dump(MeSchema, inbox.me(container().uow(), current_principal().name).to_dict())


@bp.get("/inbox")
@documented(responses={200: InboxSchema})
def my_inbox() -> Response:
    """What waits for the caller.

    `signoffs`: pending versions where the caller may give a still-missing required
    sign-off (never their own); `escalations`: open escalations the caller may resolve,
    soonest due first; `proposals`: the caller's own pending or approved versions.
    """
    found = inbox.inbox(container().uow(), current_principal().name)
    return dump(InboxSchema, found.to_dict())
