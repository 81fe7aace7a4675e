"""Demo passwords, so every demo person can sign in to the pages (``make run``).

Kept apart from ``services.demo`` (which seeds principals and versions): this only gives
each human demo principal a password, kept in a file readable by the current user only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import NotFound
from rules_service.services import accounts, governance, principals
from rules_service.services.demo import load_private_json, save_private_json

ROLE_LABELS = (("business_owner", "business owner: proposes changes"),
               ("approver", "approver: reviews and signs off, resolves escalations"),
               ("operations_owner", "operations owner: watches the queue and figures, rolls back"),
               ("maintainer", "maintainer: proposes changes"))


def set_demo_passwords(uow_factory: Callable[[], UnitOfWork], names: Iterable[str],
                       path: Path) -> dict[str, str]:
    """Gives every named human principal a password (the one in ``path`` if there is one,
    else a new random one), saves them all to ``path`` (0600), and returns them."""
    known = load_private_json(path)
    passwords: dict[str, str] = {}
    for name in sorted(set(names)):
        try:
            if principals.get_principal(uow_factory(), name).is_automation:
                continue
        except NotFound:
            continue
        password = known.get(name) or secrets.token_urlsafe(12)
        accounts.set_password(uow_factory(), name, password)
        passwords[name] = password
    save_private_json(path, passwords)
    return passwords


def demo_people(uow_factory: Callable[[], UnitOfWork],
                ruleset: str = "expense-approval") -> list[tuple[str, str]]:
    """(who, what they do) for one person per role of ``ruleset``, plus the admin."""
    try:
        owners = governance.get_ruleset(uow_factory(), ruleset).owners
    except NotFound:
        owners = {}
    out = [(str(owners[role]["primary"]), label) for role, label in ROLE_LABELS
           if owners.get(role, {}).get("primary")]
    out.append(("demo-admin", "admin: may do anything"))
    return out
