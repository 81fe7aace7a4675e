"""The demo a new user gets from ``make run``: principals, and the example rulesets made live
through the real proposal and sign-off workflow, with distinct demo principals.

The demo signs off in the owners' names, so it is kept on a short leash: it seeds only a
database that is empty, signs only the versions it proposed in that same run, and on a
database it set up earlier changes nothing. A database holding anything it did not make
(a principal, a version someone else proposed: a production database, say) is refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rules_service.adapters.ruleset_files import load_ruleset_file, load_ruleset_text
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.errors import Conflict, DomainError
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.ruleset import Ruleset
from rules_service.services import governance, principals
from rules_service.services.sync import ruleset_files

DEMO_ADMIN = "demo-admin"
DEMO_AUTOMATION = "demo-automation"
# A change left pending for approvers to review: (ruleset, threshold, new value).
DEMO_PENDING_CHANGE = ("expense-approval", "auto_approve_limit", 750)
# Every version the demo proposes carries this note prefix; with a demo author it marks
# the version as the demo's own.
DEMO_NOTE_PREFIX = "demo: "


@dataclass
class DemoReport:
    """What seeding did: tokens of the demo principals and one line per ruleset file."""

    tokens: dict[str, str] = field(default_factory=dict)
    new_principals: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    changed: bool = True


def load_private_json(path: Path) -> dict[str, str]:
    """A name -> secret file written by ``save_private_json`` ({} when absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_private_json(path: Path, tokens: dict[str, str]) -> None:
    """Writes name -> secret readable by the current user only (mode 0600, set at creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(tokens, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class NotADemoDatabase(Conflict):
    """The database holds things the demo did not make; it refuses to touch it."""

    def __init__(self, foreign: list[str]) -> None:
        super().__init__("not_a_demo_database",
                         "the database holds things the demo did not make, so the demo "
                         "will not touch it; point RULES_SERVICE_DATABASE_URL at a new "
                         "database, or run 'rules-service serve' to serve this one as it is",
                         list(foreign))


def demo_principal_names(rulesets: Iterable[Ruleset]) -> set[str]:
    """The principals the demo creates: its admin and automation, and every owner named."""
    names = {DEMO_ADMIN, DEMO_AUTOMATION}
    for ruleset in rulesets:
        for role in ruleset.owners:
            names.update(ruleset.holders_of(role))
    return names


def foreign_to_demo(principal_names: Iterable[str],
                    versions: Iterable[tuple[str, int, str, str]],
                    demo_names: set[str]) -> list[str]:
    """What a database holds that the demo did not make, one line each; empty: all its own.

    ``versions`` are (ruleset, number, author, note). A version is the demo's when a demo
    principal proposed it with the demo's note.
    """
    out = [f"principal {name} is not one of the demo's"
           for name in principal_names if name not in demo_names]
    out += [f"{ruleset} version {number} was proposed by {author} ({note!r}), not by the demo"
            for ruleset, number, author, note in versions
            if author not in demo_names or not note.startswith(DEMO_NOTE_PREFIX)]
    return out


def load_examples(rulesets_dir: Path) -> tuple[list[tuple[Path, Ruleset]], list[str]]:
    """The example ruleset files that load, and one line for each that does not."""
    loaded: list[tuple[Path, Ruleset]] = []
    skipped: list[str] = []
    for path in ruleset_files(rulesets_dir):
        try:
            loaded.append((path, load_ruleset_file(path)))
        except DomainError as exc:
            skipped.append(f"{path.name}: skipped, {exc.message}")
    return loaded, skipped


def _make_live(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator, path: Path,
               ruleset: Ruleset) -> str:
    """Proposes the file as a first version and signs off that version, and only that one."""
    version = governance.propose_version(
        uow_factory(), evaluator, ruleset.name, content=path.read_text(encoding="utf-8"),
        note=f"{DEMO_NOTE_PREFIX}{path.name}", actor=DEMO_ADMIN)
    for role in version.missing_signoffs:
        signer = next(h for h in ruleset.holders_of(role) if h != version.author)
        version = governance.sign_off(uow_factory(), ruleset.name, version.version,
                                      decision="approve", role=role, actor=signer,
                                      comment=f"demo sign-off as {role}")
    return (f"{ruleset.name}: version {version.version} {version.status} "
            f"(proposed by {version.author}, signed off by "
            f"{', '.join(s.principal for s in version.signoffs)})")


def with_threshold(text: str, threshold: str, value: int | float | str) -> str | None:
    """The ruleset file's text with one threshold's value replaced, comments and all.

    None when the threshold's line cannot be found.
    """
    pattern = re.compile(rf"^(\s+{re.escape(threshold)}\s*:\s*)([^\s#]+)", re.MULTILINE)
    changed, count = pattern.subn(lambda m: f"{m.group(1)}{value}", text, count=1)
    return changed if count else None


def _propose_demo_change(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator,
                         path: Path, ruleset: Ruleset) -> str | None:
    """Leaves one threshold change pending, so the diff and sign-off have something to show.

    The version holds the example file's YAML text with just that value changed.
    """
    name, threshold, value = DEMO_PENDING_CHANGE
    if ruleset.name != name or threshold not in ruleset.thresholds:
        return None
    text = with_threshold(path.read_text(encoding="utf-8"), threshold, value)
    if text is None or load_ruleset_text(text, str(path)).thresholds.get(threshold) != value:
        return f"{name}: demo change not proposed, cannot find {threshold} in {path.name}"
    author = ruleset.holders_of("maintainer")[0]
    view = governance.propose_version(
        uow_factory(), evaluator, name, content=text, actor=author,
        note=f"{DEMO_NOTE_PREFIX}raise {threshold} to {value}")
    return (f"{name}: version {view.version} pending (proposed by {author}: {threshold} "
            f"-> {value}; needs {', '.join(view.missing_signoffs)})")


def _as_it_is(uow_factory: Callable[[], UnitOfWork], report: DemoReport,
              existing: set[str]) -> DemoReport:
    """The report for a database an earlier run set up: what is there; nothing is changed."""
    report.changed = False
    report.tokens = {k: v for k, v in report.tokens.items() if k in existing}
    report.lines.append("nothing changed: an earlier run of the demo set this database up")
    for summary in governance.list_rulesets(uow_factory()):
        state = [f"version {summary.active_version} active"] if summary.active_version else []
        state += [f"version {n} pending" for n in summary.pending_versions]
        report.lines.append(f"{summary.name}: {', '.join(state) or 'no active version'}")
    for name in (DEMO_ADMIN, DEMO_AUTOMATION):
        if name in existing and name not in report.tokens:
            report.lines.append(f"no token of {name} on file: 'rules-service principals "
                                f"token {name}' issues a new one")
    return report


def seed_demo(uow_factory: Callable[[], UnitOfWork], evaluator: Evaluator,
              rulesets_dir: Path, tokens_path: Path) -> DemoReport:
    """Seeds an empty database; leaves one the demo set up earlier as it is.

    Raises ``NotADemoDatabase`` (409) when the database holds anything the demo did not make.
    """
    report = DemoReport(tokens=load_private_json(tokens_path))
    loaded, skipped = load_examples(rulesets_dir)
    report.lines.extend(skipped)
    names = demo_principal_names(r for _, r in loaded)
    existing = [p.name for p in principals.list_principals(uow_factory())]
    summaries = governance.list_rulesets(uow_factory())
    if existing or summaries:
        versions = [(s.name, v.version, v.author, v.note) for s in summaries
                    for v in governance.list_versions(uow_factory(), s.name)]
        foreign = foreign_to_demo(existing, versions, names)
        if foreign:
            raise NotADemoDatabase(foreign)
        return _as_it_is(uow_factory, report, set(existing))
    report.tokens = {}
    for name in sorted(names):
        issued = principals.add_principal(uow_factory(), name, is_admin=name == DEMO_ADMIN,
                                          is_automation=name == DEMO_AUTOMATION)
        report.new_principals.append(name)
        report.tokens[name] = issued.token
    save_private_json(tokens_path, report.tokens)
    for path, ruleset in loaded:
        try:
            report.lines.append(_make_live(uow_factory, evaluator, path, ruleset))
        except DomainError as exc:
            report.lines.append(f"{ruleset.name}: not made live, {exc.message}")
            continue
        try:
            line = _propose_demo_change(uow_factory, evaluator, path, ruleset)
        except DomainError as exc:
            line = f"{ruleset.name}: demo change not proposed, {exc.message}"
        if line:
            report.lines.append(line)
    return report
