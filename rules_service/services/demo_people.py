"""Demo passwords, so every demo person can sign in to the pages (``make run``).

Kept apart from ``services.demo`` (which seeds principals and versions): this only gives
each human demo principal a password, kept in a file readable by the current user only.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import NotFound
from rules_service.services import accounts, governance, principals

ROLE_LABELS = (("business_owner", "business owner: proposes changes"),
               ("approver", "approver: reviews and signs off, resolves escalations"),
               ("operations_owner", "operations owner: watches the queue and figures, rolls back"),
               ("maintainer", "maintainer: proposes changes"))


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save(path: Path, passwords: dict[str, str]) -> None:
    """Writes the file with mode 0600 from its creation on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(passwords, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def set_demo_passwords(uow_factory: Callable[[], UnitOfWork], names: Iterable[str],
                       path: Path) -> dict[str, str]:
    """Gives every named human principal a password (the one in ``path`` if there is one,
    else a new random one), saves them all to ``path`` (0600), and returns them."""
    known = _load(path)
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
    _save(path, passwords)
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
