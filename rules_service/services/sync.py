"""Sync a directory of ruleset files: propose a version for each file that changed."""

from __future__ import annotations

from pathlib import Path

from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import (
    Conflict,
    DomainError,
    RequestInvalid,
    RulesetInvalid,
)
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.problems import Problem
from rules_service.services import governance
from rules_service.services.views import SyncResult

RULESET_SUFFIXES = (".yaml", ".yml", ".json")


def ruleset_files(directory: Path) -> list[Path]:
    """The ruleset files of a directory (not recursive), by name."""
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in RULESET_SUFFIXES)


def sync_directory(uow: UnitOfWork, evaluator: Evaluator, directory: Path | str, *,
                   actor: str, revert: bool = False) -> list[SyncResult]:
    """Proposes a version for each file whose content differs from the ruleset's newest.

    Unchanged files do nothing; an invalid file is reported with all its problems and the
    rest still sync. A file equal to a version older than the newest (a stale working
    copy) is refused (``older_version``), since proposing it would undo the versions after
    it, unless ``revert`` says that is the point. Returns one result per file.
    """
    root = Path(directory)
    if not root.is_dir():
        raise RequestInvalid([Problem("directory", f"not a directory: {root}")])
    with uow.readonly():
        governance.resolve_actor(uow, actor)  # an unknown actor fails once, not per file
    results: list[SyncResult] = []
    seen: dict[str, Path] = {}
    for path in ruleset_files(root):
        results.append(_sync_file(uow, evaluator, path, seen, actor=actor, revert=revert))
    return results


def _sync_file(uow: UnitOfWork, evaluator: Evaluator, path: Path, seen: dict[str, Path], *,
               actor: str, revert: bool) -> SyncResult:
    """One file's sync: read, check, compare with the stored versions, propose."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return SyncResult(shown, "invalid", message=f"cannot read the file: {exc}",
                          code="unreadable")
    try:
        ruleset = load_ruleset_text(text, shown)
    except RulesetInvalid as exc:
        return SyncResult(shown, "invalid", message=exc.message, code=exc.code,
                          problems=tuple(str(p) for p in exc.problems))
    if ruleset.name in seen:
        return SyncResult(
            shown, "invalid", ruleset.name, code="duplicate_ruleset",
            message=f"ruleset {ruleset.name} is also defined in {seen[ruleset.name]}")
    seen[ruleset.name] = path
    stored = _stored_versions(uow, ruleset.name)
    newest = stored[-1] if stored else None
    if newest is not None and newest[1] == ruleset.content_hash:
        return SyncResult(shown, "unchanged", ruleset.name, newest[0],
                          "identical to the newest version")
    older = [v for v in stored if v[1] == ruleset.content_hash]
    if older and newest is not None and older[-1][2] != "active" and not revert:
        number = older[-1][0]
        return SyncResult(
            shown, "refused", ruleset.name, number, code="older_version",
            message=f"the file is version {number}, older than the newest version "
                    f"{newest[0]}; proposing it would undo versions "
                    f"{number + 1} to {newest[0]}. Update the file, or pass --revert "
                    f"if undoing them is the point")
    return _propose_file(uow, evaluator, path, ruleset.name, text, actor=actor)


def _propose_file(uow: UnitOfWork, evaluator: Evaluator, path: Path, name: str, text: str, *,
                  actor: str) -> SyncResult:
    """Proposes one changed file, each refusal as the result's code and message."""
    shown = str(path)
    try:
        view = governance.propose_version(uow, evaluator, name, content=text,
                                          note=f"synced from {path.name}", actor=actor)
    except RulesetInvalid as exc:
        return SyncResult(shown, "invalid", name, message=exc.message, code=exc.code,
                          problems=tuple(str(p) for p in exc.problems))
    except Conflict as exc:
        if exc.code in ("identical_to_active", "identical_to_pending"):
            return SyncResult(shown, "unchanged", name, message=exc.message, code=exc.code)
        return SyncResult(shown, "refused", name, message=exc.message, code=exc.code)
    except DomainError as exc:
        return SyncResult(shown, "refused", name, message=exc.message, code=exc.code)
    return SyncResult(shown, "proposed", name, view.version, f"proposed version {view.version}")


def _stored_versions(uow: UnitOfWork, name: str) -> list[tuple[int, str, str]]:
    """(number, content hash, status) of every version of the ruleset, oldest first."""
    with uow.readonly():
        rs = uow.rulesets.get(name)
        if rs is None:
            return []
        return [(v.number, v.content_hash, v.status) for v in uow.versions.for_ruleset(rs.id)]
