"""CLI: ``rules-service worker``, the process that delivers notifications and carries out
escalation timers (``services.delivery.Worker``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    p = sub.add_parser("worker", help="deliver notifications (webhooks, email) and walk "
                                      "overdue escalations along their runbook's path")
    p.add_argument("--once", action="store_true",
                   help="make one pass and exit (for cron or a test)")
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Runs the worker until SIGTERM or SIGINT (the pass in progress is finished first)."""
    from sqlalchemy.exc import SQLAlchemyError

    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings, SettingsError
    from rules_service.services.delivery import DeliverySettings, Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s "
                                                   "%(message)s")
    try:
        settings = Settings.from_env()
        delivery = DeliverySettings.from_env()
    except SettingsError as exc:
        print(f"rules-service worker: {exc}", file=sys.stderr)
        return 2
    container = bootstrap(settings)
    worker = Worker(container.uow, delivery)
    try:
        if args.once:
            report = worker.run_once()
            print(f"escalation steps {report.escalation_steps}, events "
                  f"{report.events_dispatched}, delivered {report.delivered}, failed "
                  f"{report.failed}, dead {report.dead}")
            return 0
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        print("rules-service worker: delivering (SIGTERM to stop)", flush=True)
        worker.run(stop)
        return 0
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"rules-service worker: database error: {reason}", file=sys.stderr)
        return 1
    finally:
        container.close()
