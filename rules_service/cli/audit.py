"""CLI: ``rules-service audit seal | verify | prove`` (``services.seals``)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rules_service.cli.db import guarded
from rules_service.config import Settings

if TYPE_CHECKING:
    from rules_service.adapters.seal_store import SealStore

HEAD = re.compile(r"(\d+):([0-9a-f]{64})\Z")
"""``--head NUMBER:HASH``: a seal as an auditor kept it from ``GET /v1/seals/latest``."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    audit = sub.add_parser("audit", help="seal the decision log and the audit trail, "
                                         "verify the seals, prove one decision")
    words = audit.add_subparsers(dest="audit_command", required=True, metavar="WORD")
    p = words.add_parser("seal", help="seal every decision and audit event not yet sealed")
    p.set_defaults(handler=guarded(cmd_seal))
    p = words.add_parser("verify", help="recompute every seal and name each item changed, "
                                        "missing or added to a sealed period (exit 1)")
    p.add_argument("--archive", metavar="DIR",
                   help="the retention's archive directory: decisions of removed months "
                        "are checked against their archives")
    p.add_argument("--head", metavar="NUMBER:HASH",
                   help="a seal kept outside the database; the chain must hold it")
    p.set_defaults(handler=guarded(cmd_verify))
    p = words.add_parser("prove", help="print the Merkle path from a decision to its seal")
    p.add_argument("decision_id")
    p.set_defaults(handler=guarded(cmd_prove))


def _store() -> SealStore:
    from rules_service.adapters.database import make_engine
    from rules_service.adapters.seal_store import SealStore

    return SealStore(make_engine(Settings.from_env().database_url))


def cmd_seal(_args: argparse.Namespace) -> int:
    """Seals what waits and prints each seal written."""
    from rules_service.adapters.orm import utcnow
    from rules_service.services import seals

    store = _store()
    try:
        written = seals.seal(store, utcnow())
    finally:
        store.engine.dispose()
    for made in written:
        print(f"seal {made.number}: {made.items} items, hash {made.hash}")
    if not written:
        print("nothing to seal")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 with the summary line when everything is intact; 1 naming every problem."""
    from rules_service.services import seals

    problems = []
    archive = Path(args.archive) if args.archive else None
    if archive is not None and not archive.is_dir():
        problems.append(f"--archive: {archive} is not a directory")
    head = HEAD.match(args.head or "") if args.head else None
    if args.head and head is None:
        problems.append(f"--head: NUMBER:HASH (64 hex digits), got {args.head!r}")
    if problems:
        print("error: cannot verify", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    store = _store()
    try:
        report = seals.verify(store, archive,
                              (int(head.group(1)), head.group(2)) if head else None)
    finally:
        store.engine.dispose()
    for line in report.lines():
        print(line)
    return 0 if report.intact else 1


def cmd_prove(args: argparse.Namespace) -> int:
    """Prints the decision's proof; exit 1 when the proof or the content does not hold."""
    from rules_service.services import seals

    store = _store()
    try:
        proved = seals.prove(store, args.decision_id)
    finally:
        store.engine.dispose()
    for line in proved.lines():
        print(line)
    return 0 if proved.proof.verifies() and proved.content_matches else 1
