"""``rules-service table export|import``: decision tables to and from spreadsheets."""

from __future__ import annotations

import argparse
import sys

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.adapters.table_files import (
    TableFileError,
    export_csv,
    export_xlsx,
    import_table,
)
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.problems import Problem


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers ``table export`` and ``table import``."""
    table = sub.add_parser("table", help="decision tables to and from CSV or XLSX")
    actions = table.add_subparsers(dest="table_command", required=True, metavar="ACTION")

    p = actions.add_parser("export", help="write a table as CSV (stdout) or XLSX")
    p.add_argument("file", metavar="FILE")
    p.add_argument("table", metavar="TABLE")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (the default)")
    fmt.add_argument("--xlsx", metavar="OUT", help="write an XLSX workbook to OUT")
    p.add_argument("-o", "--output", metavar="OUT", help="write the CSV to OUT, not stdout")
    p.set_defaults(handler=cmd_export)

    p = actions.add_parser("import", help="replace a table's rows from a CSV or XLSX sheet")
    p.add_argument("file", metavar="FILE")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("sheet", metavar="CSV", help="a .csv or .xlsx file")
    p.set_defaults(handler=cmd_import)


def _fail(source: str, problems: list[Problem]) -> int:
    print(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
          file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    """Writes one table of a ruleset file as CSV or XLSX."""
    try:
        ruleset = load_ruleset_file(args.file)
        if args.xlsx:
            export_xlsx(ruleset, args.table, args.xlsx)
            return 0
        text = export_csv(ruleset, args.table)
    except RulesetInvalid as exc:
        return _fail(args.file, list(exc.problems))
    except TableFileError as exc:
        return _fail(args.file, exc.problems)
    except OSError as exc:
        return _fail(args.file, [Problem("", f"cannot read or write: {exc.strerror or exc}")])
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Replaces a table's rows with a sheet's; the file is checked before it is written."""
    try:
        result = import_table(args.file, args.table, args.sheet)
    except RulesetInvalid as exc:
        return _fail(args.file, list(exc.problems))
    except TableFileError as exc:
        return _fail(args.sheet, exc.problems)
    except OSError as exc:
        return _fail(args.sheet, [Problem("", f"cannot read or write: {exc.strerror or exc}")])
    if result.unchanged:
        print(f"{args.file}: table {args.table} unchanged")
    else:
        print(f"{args.file}: table {args.table}: {len(result.added)} rows added, "
              f"{len(result.changed)} changed, {len(result.removed)} removed")
    return 0
