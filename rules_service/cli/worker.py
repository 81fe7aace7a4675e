"""CLI: ``rules-service worker``, the process that delivers notifications and carries out
escalation timers (``services.delivery.Worker``); while it runs it also folds recorded
decisions into the rollups (``adapters.rollup_fold``), as each API process does, and decides
recorded decisions again with each version in shadow
(``services.shadow_runner.ShadowRunner``, in a thread of its own), and seals the decision
log and the audit trail every ``services.seals.SEAL_INTERVAL_S`` seconds in a thread of its
own."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

log = logging.getLogger("rules_service.worker")

TEXT_FORMAT = "%(asctime)s worker %(levelname)s %(message)s"

PARENT_CHECK_S = 1.0
"""How often a worker started beside the server checks that the server still runs."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    p = sub.add_parser("worker", help="deliver notifications (webhooks, email), walk "
                                      "overdue escalations along their runbook's path and "
                                      "run the versions in shadow and seal the decision log")
    p.add_argument("--once", action="store_true",
                   help="make one pass and exit (for cron or a test)")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_worker)


def start_worker_process(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``rules-service worker`` as a child of this process (``make run`` starts one beside
    the server), with ``env`` on top of this process's environment; it stops by itself if
    this process dies without stopping it."""
    code = "import sys; from rules_service.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "worker",
                             "--parent-pid", str(os.getpid())], env={**os.environ, **(env or {})})


def stop_worker_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stops a worker started by ``start_worker_process``: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


def _watch_parent(parent: int, stop: threading.Event) -> None:
    # Orphaned (the server was killed outright): stop rather than run on unsupervised.
    while not stop.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            stop.set()


def cmd_worker(args: argparse.Namespace) -> int:
    """Runs the worker until SIGTERM or SIGINT (the pass in progress is finished first)."""
    from sqlalchemy.exc import SQLAlchemyError

    from rules_service.adapters.rollup_fold import fold_pending
    from rules_service.adapters.seal_store import SealStore
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings, SettingsError
    from rules_service.log_format import configure_stderr
    from rules_service.services import seals
    from rules_service.services.delivery import DeliverySettings, Worker
    from rules_service.services.shadow_runner import ShadowRunner, ShadowSettings

    try:
        settings = Settings.from_env()
        delivery = DeliverySettings.from_env()
        shadow_settings = ShadowSettings.from_env()
    except SettingsError as exc:
        print(f"rules-service worker: {exc}", file=sys.stderr)
        return 2
    configure_stderr(settings.log_format, settings.log_level, TEXT_FORMAT)
    container = bootstrap(settings)
    worker = Worker(container.uow, delivery, clock=container.clock)
    shadows = ShadowRunner(container.uow, lambda: container.evaluator, shadow_settings)
    try:
        if args.once:
            shadowed = shadows.catch_up()
            report = worker.run_once()
            folded = fold_pending(container.engine)
            sealed = seals.seal(SealStore(container.engine), container.clock())
            print(f"seals written {len(sealed)}")
            print(f"escalation steps {report.escalation_steps}, events "
                  f"{report.events_dispatched}, delivered {report.delivered}, failed "
                  f"{report.failed}, dead {report.dead}, decisions folded into the "
                  f"figures {folded}, shadowed {shadowed.decided}, shed {shadowed.shed}")
            return 0
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        if args.parent_pid is not None:
            threading.Thread(target=_watch_parent, args=(args.parent_pid, stop),
                             name="parent-watch", daemon=True).start()
        container.rollup_folder.start()  # counts recorded decisions into the rollups
        runner = threading.Thread(target=shadows.run, args=(stop,), name="shadow-runner",
                                  daemon=True)
        runner.start()
        sealer = threading.Thread(
            target=seals.run_sealer, name="sealer",
            args=(SealStore(container.engine), stop, container.clock,
                  lambda exc: log.warning("sealing failed (%s); trying again shortly", exc)))
        sealer.start()
        log.info("worker started: delivering, running shadows and sealing (SIGTERM to stop)")
        try:
            worker.run(stop)
        finally:
            stop.set()
            sealer.join()
            runner.join(timeout=30)
        return 0
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"rules-service worker: database error: {reason}", file=sys.stderr)
        return 1
    finally:
        container.close()
