"""The head of the seal chain, for an auditor to keep outside the database."""

from __future__ import annotations

from flask import Blueprint, Response

from api.openapi import documented
from api.responses import dump
from api.schemas import SealSchema
from api.services import container
from rules_service.services import seals
from rules_service.services.views import iso

bp = Blueprint("seals", __name__, url_prefix="/v1/seals")


@bp.get("/latest")
@documented(responses={200: SealSchema}, errors=(404,))
def latest_seal() -> Response:
    """The newest seal of the decision log and the audit trail: its number, hash, time and
    item count (any principal). Keep it elsewhere and pass it to `rules-service audit
    verify --head NUMBER:HASH` later: a rewritten chain no longer holds it.

    404 before the first seal.
    """
    head = seals.latest(container().seal_store())
    return dump(SealSchema, {"seal": head.number, "hash": head.hash,
                             "sealed_at": iso(head.sealed_at), "items": head.items})
