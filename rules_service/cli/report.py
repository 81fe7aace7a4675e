"""CLI: ``rules-service report weekly``, each ruleset's week beside the week before, printed
or sent (``services.weekly_report``)."""

from __future__ import annotations

import argparse
import json
import sys

from rules_service.cli.db import error_details, fail, guarded, open_container
from rules_service.domain.errors import DomainError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    p = sub.add_parser("report", help="reports on the rulesets' figures")
    kinds = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    weekly = kinds.add_parser(
        "weekly", help="each ruleset's throughput, cycle time, exception rate, approval "
                       "delay, fallback activations and hours saved of a week (Monday to "
                       "Monday, UTC) beside the week before")
    weekly.add_argument("--ruleset", metavar="NAME", default=None,
                        help="only this ruleset (default: every one)")
    weekly.add_argument("--week", metavar="YYYY-MM-DD", default=None,
                        help="the week holding this day (default: the last complete week)")
    weekly.add_argument("--send", action="store_true",
                        help="also send it: by email to each ruleset's business and "
                             "operations owners (primary and backup) and as the event "
                             "report.weekly to its subscriptions (the worker delivers)")
    weekly.add_argument("--json", action="store_true", help="print JSON instead of text")
    weekly.set_defaults(handler=guarded(_weekly))


def _weekly(args: argparse.Namespace) -> int:
    from rules_service.services import weekly_report

    with open_container() as container:
        try:
            report = weekly_report.weekly_report(container.uow, week=args.week,
                                                 ruleset=args.ruleset)
        except DomainError as exc:
            return fail("cannot make the weekly report", error_details(exc) or [exc.message])
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
        else:
            print(report.text(container.settings.base_url), end="")
        if args.send:
            queued = weekly_report.send_weekly_report(container.uow, report)
            people = sorted({p for r in report.rulesets for p in r.recipients})
            print(f"sent: {queued} report.weekly event(s) queued for delivery by the worker; "
                  f"email to {', '.join(people) or 'nobody'}",
                  file=sys.stderr if args.json else sys.stdout)
    return 0
