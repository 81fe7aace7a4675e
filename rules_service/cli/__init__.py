"""The ``rules-service`` command line: one module per group of subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rules_service.cli import audit, db, local, operate, report, server, tables, worker


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="rules-service",
        description="Versioned, owner-approved business rules.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (local, tables, db, audit, operate, server, worker, report):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
