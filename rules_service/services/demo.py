"""The demo a new user gets from ``make run``: principals, and the example rulesets made live
through the real proposal and sign-off workflow, with distinct demo principals."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import DomainError, NotFound
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.ruleset import Ruleset
from rules_service.services import governance, principals
from rules_service.services.sync import ruleset_files

DEMO_ADMIN = "demo-admin"
DEMO_AUTOMATION = "demo-automation"
# A change left pending for approvers to review: (ruleset, threshold, new value).
DEMO_PENDING_CHANGE = ("expense-approval", "auto_approve_limit", 750)


@dataclass
class DemoReport:
    """What seeding did: tokens of the demo principals and one line per ruleset file."""

    tokens: dict[str, str] = field(default_factory=dict)
    new_principals: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _load_tokens(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_tokens(path: Path, tokens: dict[str, str]) -> None:
    """Writes the tokens readable by the current user only (mode 0600, set at creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(tokens, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _ensure_principal(uow_factory: Callable[[], UnitOfWork], report: DemoReport, name: str,
                      *, admin: bool = False, automation: bool = False) -> None:
    if name in report.tokens:
        return
    try:
        principals.get_principal(uow_factory(), name)
    except NotFound:
        issued = principals.add_principal(uow_factory(), name, is_admin=admin,
                                          is_automation=automation)
        report.new_principals.append(name)
    else:  # it exists but its token was lost: issue a new one
        issued = principals.issue_token(uow_factory(), name)
    report.tokens[name] = issued.token


def _make_live(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator, path: Path,
               ruleset: Ruleset) -> str:
    """Proposes the file (if it is new) and signs it off by each required role's holder."""
    try:
        versions = governance.list_versions(uow_factory(), ruleset.name)
    except NotFound:
        versions = []
    same = [v for v in versions if v.content_hash == ruleset.content_hash]
    active = next((v for v in same if v.status == "active"), None)
    if active is not None:
        return f"{ruleset.name}: version {active.version} is active (unchanged)"
    pending = next((v for v in same if v.status == "pending"), None)
    if pending is not None:
        version = pending
    else:
        # A first version may only be proposed by an admin; later ones by the maintainer.
        author = DEMO_ADMIN if not any(v.status in ("active", "superseded") for v in versions) \
            else ruleset.holders_of("maintainer")[0]
        version = governance.propose_version(
            uow_factory(), evaluator, ruleset.name, content=path.read_text(encoding="utf-8"),
            note=f"demo: {path.name}", actor=author)
    for role in version.missing_signoffs:
        signer = next(h for h in ruleset.holders_of(role) if h != version.author)
        version = governance.sign_off(uow_factory(), ruleset.name, version.version,
                                      decision="approve", role=role, actor=signer,
                                      comment=f"demo sign-off as {role}")
    return (f"{ruleset.name}: version {version.version} {version.status} "
            f"(proposed by {version.author}, signed off by "
            f"{', '.join(s.principal for s in version.signoffs)})")


def _propose_demo_change(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator,
                         ruleset: Ruleset) -> str | None:
    """Leaves one threshold change pending, so the diff and sign-off have something to show."""
    name, threshold, value = DEMO_PENDING_CHANGE
    if ruleset.name != name or threshold not in ruleset.thresholds:
        return None
    versions = governance.list_versions(uow_factory(), name)
    if any(v.status == "pending" for v in versions) or len(versions) > 1:
        return None
    definition = json.loads(json.dumps(ruleset.definition))
    definition["thresholds"][threshold] = value
    author = ruleset.holders_of("maintainer")[0]
    view = governance.propose_version(
        uow_factory(), evaluator, name, definition=definition, actor=author,
        note=f"demo: raise {threshold} to {value}")
    return (f"{name}: version {view.version} pending (proposed by {author}: {threshold} "
            f"-> {value}; needs {', '.join(view.missing_signoffs)})")


def seed_demo(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator,
              rulesets_dir: Path, tokens_path: Path) -> DemoReport:
    """Creates the demo principals (once) and makes every example ruleset live."""
    report = DemoReport(tokens=_load_tokens(tokens_path))
    # Drop remembered tokens of principals that no longer exist (e.g. a fresh database).
    for name in list(report.tokens):
        try:
            principals.get_principal(uow_factory(), name)
        except NotFound:
            del report.tokens[name]
    loaded: list[tuple[Path, Ruleset]] = []
    for path in ruleset_files(rulesets_dir):
        try:
            loaded.append((path, load_ruleset_file(path)))
        except DomainError as exc:
            report.lines.append(f"{path.name}: skipped, {exc.message}")
    _ensure_principal(uow_factory, report, DEMO_ADMIN, admin=True)
    _ensure_principal(uow_factory, report, DEMO_AUTOMATION, automation=True)
    for _, ruleset in loaded:
        for role in sorted(ruleset.owners):
            for person in ruleset.holders_of(role):
                _ensure_principal(uow_factory, report, person)
    _save_tokens(tokens_path, report.tokens)
    for path, ruleset in loaded:
        try:
            report.lines.append(_make_live(uow_factory, evaluator, path, ruleset))
        except DomainError as exc:
            report.lines.append(f"{ruleset.name}: not made live, {exc.message}")
            continue
        try:
            line = _propose_demo_change(uow_factory, evaluator, ruleset)
        except DomainError as exc:
            line = f"{ruleset.name}: demo change not proposed, {exc.message}"
        if line:
            report.lines.append(line)
    return report
