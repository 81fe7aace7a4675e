"""CLI commands that operate a live ruleset through the database: pause and resume.

They act as a principal (``--as NAME``, or ``RULES_SERVICE_ACTOR``) with the same authority
as over HTTP: the operations or business owner of the active version, or an admin. Without
either, the person at the console acts as an admin, recorded as ``console:USER`` (the
operating-system user): whoever can reach the database this way can already create an
admin with ``principals add --admin``, so no authority is given away, and the audit trail
still names who it was.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os

from rules_service.cli.db import guarded, open_container
from rules_service.domain.lifecycle import Actor
from rules_service.services.views import RulesetDetail

ACTOR_ENV = "RULES_SERVICE_ACTOR"


def _actor(args: argparse.Namespace) -> str | Actor:
    named = args.actor or os.environ.get(ACTOR_ENV)
    if named:
        return str(named)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return Actor(f"console:{user}", is_admin=True)


def _print(detail: RulesetDetail, as_json: bool) -> None:
    summary = detail.summary
    if as_json:
        print(json.dumps(detail.to_dict(), indent=2))
    elif summary.paused is not None:
        print(f"{summary.name} is {summary.paused.sentence()}")
        print("every decision is recorded and goes to the approver until it is resumed")
    else:
        print(f"{summary.name} is running: its rules decide "
              f"(active version {summary.active_version})")


def _pause(args: argparse.Namespace) -> int:
    from rules_service.services import governance

    actor = _actor(args)
    with open_container() as c:
        detail = governance.pause(c.uow(), args.name, reason=args.reason, actor=actor)
    _print(detail, args.json)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from rules_service.services import governance

    actor = _actor(args)
    with open_container() as c:
        detail = governance.resume(c.uow(), args.name, actor=actor)
    _print(detail, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers ``pause`` and ``resume``."""
    p = sub.add_parser("pause", help="stop automatic decisions of a ruleset: each goes to "
                                     "the approver, with the reason, until it is resumed")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reason", required=True, help="what people are looking at")
    p.add_argument("--as", dest="actor", metavar="PRINCIPAL",
                   help=f"who pauses (default: ${ACTOR_ENV}, else the console's user as an admin)")
    p.add_argument("--json", action="store_true", help="print the ruleset as JSON")
    p.set_defaults(handler=guarded(_pause))
    r = sub.add_parser("resume", help="end a pause: the ruleset's rules decide again")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--as", dest="actor", metavar="PRINCIPAL",
                   help=f"who resumes (default: ${ACTOR_ENV}, else the console's user as an admin)")
    r.add_argument("--json", action="store_true", help="print the ruleset as JSON")
    r.set_defaults(handler=guarded(_resume))
