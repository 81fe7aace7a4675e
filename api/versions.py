"""Versions of a ruleset: propose, list, show, sign off, withdraw."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for

from api.auth import current_principal
from api.openapi import documented
from api.responses import dump
from api.schemas import (
    ProposedVersionSchema,
    ProposeVersionRequest,
    SignoffRequest,
    SignoffResultSchema,
    VersionListSchema,
    VersionSchema,
    WithdrawRequest,
)
from api.services import container
from rules_service.services import governance

bp = Blueprint("versions", __name__, url_prefix="/v1/rulesets/<name>/versions")


@bp.post("")
@documented(body=ProposeVersionRequest, responses={201: ProposedVersionSchema},
            errors=(403, 404, 409))
def propose(name: str, body: dict[str, Any]) -> Response:
    """Propose a new version: YAML text in `content`, or a `definition` object.

    Every problem of an invalid ruleset (every failing embedded test, every owner who is
    not a principal) is listed in `details` with its place. The first version of a ruleset
    needs an admin. With `base_version` (the version the author started from), a newer
    version than that is 409 `stale_base`, naming each one in `details`. `warnings` names
    every other pending or approved version on the same base: whichever goes live first
    makes the others stale.
    """
    c = container()
    view = governance.propose_version(
        c.uow(), c.evaluator, name, content=body.get("content"),
        definition=body.get("definition"), note=body["note"],
        effective_at=body["effective_at"], base_version=body["base_version"],
        actor=current_principal().name)
    location = url_for("versions.get_version", name=name, number=view.version)
    return dump(ProposedVersionSchema, {**view.to_dict(), "warnings": list(view.warnings)},
                201, {"Location": location})


@bp.get("")
@documented(responses={200: VersionListSchema}, errors=(404,))
def list_versions(name: str) -> Response:
    """List every version of the ruleset, oldest first."""
    views = governance.list_versions(container().uow(), name)
    return dump(VersionListSchema,
                {"versions": [v.to_dict(include_content=False) for v in views]})


@bp.get("/<version:number>")
@documented(responses={200: VersionSchema}, errors=(404,))
def get_version(name: str, number: int) -> Response:
    """Show one version: status, author, base version, content and sign-offs."""
    view = governance.get_version(container().uow(), name, number)
    return dump(VersionSchema, view.to_dict())


@bp.post("/<version:number>/signoffs")
@documented(body=SignoffRequest, responses={201: SignoffResultSchema}, errors=(403, 404, 409))
def sign_off(name: str, number: int, body: dict[str, Any]) -> Response:
    """Approve or reject a pending version in one of your sign-off roles.

    The author can never sign off their own version, and one person fills one role.
    The last required approval makes the version approved, and active at its
    effective time. The answer is the sign-off given and the version's status; the
    version itself is at its own address.
    """
    actor = current_principal().name
    view = governance.sign_off(container().uow(), name, number, decision=body["decision"],
                               comment=body["comment"], role=body["role"], actor=actor)
    return dump(SignoffResultSchema, view.signoff_result(actor), 201)


@bp.post("/<version:number>/withdraw")
@documented(body=WithdrawRequest, body_optional=True, responses={200: VersionSchema},
            errors=(403, 404, 409))
def withdraw(name: str, number: int, body: dict[str, Any]) -> Response:
    """Withdraw your own pending (or approved, not yet active) version."""
    view = governance.withdraw_version(container().uow(), name, number,
                                       comment=body["comment"],
                                       actor=current_principal().name)
    return dump(VersionSchema, view.to_dict())
