"""CLI commands on ruleset files alone, no database: validate, test, evaluate, diff."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.domain.diff import diff_definitions
from rules_service.domain.errors import InputInvalid, RulesetInvalid
from rules_service.domain.inputs import validate_input
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.table_analysis import analyze_tables
from rules_service.domain.testing import run_tests


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers validate, test, evaluate and diff."""
    p = sub.add_parser("validate", help="check ruleset files; exit 1 listing every problem")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("test", help="run each file's embedded tests; exit 1 on any failure")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_test)

    p = sub.add_parser("evaluate", help="evaluate one input against a ruleset file, locally")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--input", required=True, metavar="JSON",
                   help="the input as JSON, or @path to read it from a file ('@-' for stdin)")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("diff", help="what changed between two ruleset files")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.set_defaults(handler=cmd_diff)


def _print_problems(source: str, problems: list[Problem]) -> None:
    print(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
          file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _load(path: str) -> Ruleset | None:
    """The ruleset in ``path``, or None after printing every problem."""
    try:
        return load_ruleset_file(path)
    except RulesetInvalid as exc:
        _print_problems(path, list(exc.problems))
    except OSError as exc:
        _print_problems(path, [Problem("", f"cannot read the file: {exc.strerror or exc}")])
    return None


@contextmanager
def _engine() -> Iterator[Any]:
    # Imported here so `validate` never starts engine processes.
    from rules_service.engine import EnginePool

    pool = EnginePool(workers=1)
    try:
        yield pool
    finally:
        pool.close()


def _principals_in_sight() -> tuple[str, set[str]] | None:
    """The database's URL (password hidden) and its principals, when one can be seen.

    Seen: ``RULES_SERVICE_DATABASE_URL`` or the default SQLite file exists, answers, and is
    migrated. Read only; nothing is created.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from rules_service.adapters import migrations_runner
    from rules_service.config import Settings, SettingsError

    try:
        settings = Settings.from_env()
        url = make_url(settings.database_url)
    except (SettingsError, ValueError):
        return None
    if url.get_backend_name() == "sqlite" and (
            not url.database or not Path(url.database).expanduser().is_file()):
        return None
    try:
        footprint = migrations_runner.read_footprint(settings.database_url)
    except SQLAlchemyError:
        return None
    if footprint.revision is None:
        return None
    return url.render_as_string(hide_password=True), footprint.active_principals


def cmd_validate(args: argparse.Namespace) -> int:
    """Validates each file; prints every problem; exit 1 if any file is invalid.

    When a database can be seen, owners who are not principals there are warnings.
    """
    from rules_service.domain.lifecycle import owner_problems

    failed = 0
    sight: tuple[str, set[str]] | None | bool = False  # False: not looked yet
    for path in args.files:
        ruleset = _load(path)
        if ruleset is None:
            failed += 1
            continue
        rows = sum(len(t["rows"]) for t in ruleset.definition.get("tables", []))
        tables = f"{rows} table rows, " if rows else ""
        print(f"{path}: ok ({ruleset.name}, {len(ruleset.rules) - rows} rules, {tables}"
              f"{len(ruleset.tests)} tests)")
        # Table findings are for the approver to weigh; they never fail validation.
        for warning in analyze_tables(ruleset.definition):
            print(f"  warning: {warning}")
        # So is an incomplete runbook: the people on call need every part of it.
        if ruleset.runbook_gaps:
            print(f"  warning: the runbook lacks {', '.join(ruleset.runbook_gaps)}: "
                  f"people running this policy without its builders need every part "
                  f"(runbook.{ruleset.runbook_gaps[0]} first)")
        if sight is False:
            sight = _principals_in_sight()
        if isinstance(sight, tuple):
            where, known = sight
            for problem in owner_problems(ruleset, known):
                print(f"{path}: warning: {problem} (in {where}); proposing it will be "
                      f"refused", file=sys.stderr)
    return 1 if failed else 0


def cmd_test(args: argparse.Namespace) -> int:
    """Runs the embedded tests of each file with the real engine."""
    failed = 0
    with _engine() as engine:
        for path in args.files:
            ruleset = _load(path)
            if ruleset is None:
                failed += 1
                continue
            results = run_tests(ruleset, engine)
            bad = [r for r in results if not r.passed]
            print(f"{path}: {len(results) - len(bad)} passed, {len(bad)} failed")
            for r in results:
                mark = "PASS" if r.passed else "FAIL"
                print(f"  {mark} {r.name}")
                for failure in r.failures:
                    print(f"       {failure}")
            if not results:
                print("  (no tests: every ruleset should test each of its rules)")
            failed += bool(bad)
    return 1 if failed else 0


def _read_input(spec: str) -> Any:
    if spec.startswith("@"):
        target = spec[1:]
        text = sys.stdin.read() if target == "-" else Path(target).read_text(encoding="utf-8")
    else:
        text = spec
    return json.loads(text)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluates one input locally and prints the decision as JSON."""
    ruleset = _load(args.file)
    if ruleset is None:
        return 1
    try:
        raw = _read_input(args.input)
    except (OSError, ValueError) as exc:
        _print_problems("--input", [Problem("input", f"not valid JSON: {exc}")])
        return 1
    try:
        data = validate_input(ruleset, raw)
    except InputInvalid as exc:
        _print_problems("--input", list(exc.problems))
        return 1
    with _engine() as engine:
        evaluation = engine.evaluate(ruleset, data)
    print(json.dumps({"ruleset": ruleset.name, **evaluation.to_dict()}, indent=2))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Prints the diff between two ruleset files."""
    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return 1
    diff = diff_definitions(old.definition, new.definition)
    if args.format == "text":
        if not diff.summary:
            print("No changes.")
        for sentence in diff.summary:
            print(f"- {sentence}")
        for warning in diff.warnings:
            print(f"- warning: {warning}")
    else:
        print(json.dumps({"from": args.old, "to": args.new, **diff.to_dict()}, indent=2))
    return 0
