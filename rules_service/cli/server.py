"""CLI: running the HTTP API (``serve``), and the one-command demo behind ``make run``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rules_service.config import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
PUBLIC_DOCS_VARIABLE = "RULES_SERVICE_PUBLIC_DOCS"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on "
                                                        f"(default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, default=None,
                   help="gunicorn worker processes (default: gunicorn_conf's, 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per worker (default: gunicorn_conf's, 8)")
    p.add_argument("--dev", action="store_true",
                   help="use Werkzeug's development server instead of gunicorn")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("demo", help="migrate, create demo principals, make the example "
                                    "rulesets live through sign-off, and serve")
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rulesets", default="rulesets", metavar="DIR",
                   help="the ruleset files to make live (default rulesets/)")
    p.add_argument("--tokens", default="instance/demo-tokens.json", metavar="FILE",
                   help="where the demo tokens are kept, readable by you only")
    p.add_argument("--no-serve", action="store_true", help="set up, print, and exit")
    p.add_argument("--no-worker", action="store_true",
                   help="do not start the notification worker beside the server")
    p.set_defaults(handler=cmd_demo, dev=False)


def _check(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port must be between 0 and 65535, not {args.port}"
    if (args.workers is not None and args.workers < 1) or (
            args.threads is not None and args.threads < 1):
        return "--workers and --threads must be at least 1"
    return None


def _settings_or_exit() -> Any:
    from rules_service.config import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"rules-service serve: {exc}", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    """Runs the API until interrupted: gunicorn by default, Werkzeug with ``--dev``."""
    problem = _check(args)
    if problem:
        print(f"rules-service serve: {problem}", file=sys.stderr)
        return 2
    settings = _settings_or_exit()
    if settings is None:
        return 2
    if args.dev:
        return _serve_werkzeug(settings, args.host, args.port)
    return _serve_gunicorn(settings, args.host, args.port, args.workers, args.threads)


def _serve_werkzeug(settings: Any, host: str, port: int) -> int:
    from werkzeug.serving import WSGIRequestHandler, run_simple

    from api import create_app

    class _Handler(WSGIRequestHandler):
        """Werkzeug's handler without its access line: the app logs each request itself
        (api/request_log.py)."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    run_simple(host, port, create_app(settings), threaded=True, use_reloader=False,
               request_handler=_Handler)
    return 0


def _serve_gunicorn(settings: Any, host: str, port: int, workers: int | None,
                    threads: int | None) -> int:
    from gunicorn.app.base import BaseApplication

    from rules_service import gunicorn_conf

    class _Application(BaseApplication):  # type: ignore[misc,unused-ignore]
        """gunicorn with the app built in each worker (engines and pools never cross a fork)."""

        def load_config(self) -> None:
            # rules_service/gunicorn_conf.py first, as the production command has it; then
            # the flags.
            for name, value in vars(gunicorn_conf).items():
                if name in self.cfg.settings:
                    self.cfg.set(name, value)
            self.cfg.set("bind", [f"{host}:{port}"])
            if workers is not None:
                self.cfg.set("workers", workers)
            if threads is not None:
                self.cfg.set("threads", threads)

        def load(self) -> Any:
            from api import create_app

            return create_app(settings)

    _Application().run()
    return 0


def _refusal(foreign: list[str]) -> int:
    print("rules-service demo: refused: this database holds things the demo did not make, "
          "and the demo signs off in its owners' names, so it will not touch it:",
          file=sys.stderr)
    for line in foreign:
        print(f"  {line}", file=sys.stderr)
    print("  point RULES_SERVICE_DATABASE_URL at a new database for the demo, or run "
          "'rules-service serve' to serve this one as it is", file=sys.stderr)
    return 1


@dataclasses.dataclass(frozen=True)
class _DemoSetUp:
    report: Any
    passwords: dict[str, str]
    passwords_path: Path
    people: list[tuple[str, str]]


def _set_up_demo(settings: Settings, rulesets_dir: Path,
                 tokens_path: Path) -> _DemoSetUp | int:
    """Migrates and seeds the demo database; an exit code when it is refused or fails."""
    from sqlalchemy.exc import SQLAlchemyError

    from rules_service.adapters import migrations_runner
    from rules_service.bootstrap import bootstrap
    from rules_service.services import demo
    from rules_service.services.demo_mail import give_demo_addresses
    from rules_service.services.demo_people import demo_people, set_demo_passwords

    try:
        # Read before migrating: a database that is not the demo's is never touched.
        footprint = migrations_runner.read_footprint(settings.database_url)
        if footprint.revision is None and footprint.tables:
            return _refusal([f"tables not made by rules-service: "
                             f"{', '.join(footprint.tables)}"])
        loaded, _ = demo.load_examples(rulesets_dir)
        foreign = demo.foreign_to_demo(footprint.principals, footprint.versions,
                                       demo.demo_principal_names(r for _, r in loaded))
        if foreign:
            return _refusal(foreign)
        migrations_runner.upgrade(settings.database_url, "head")
        container = bootstrap(settings)
        try:
            report = demo.seed_demo(container.uow, container.evaluator, rulesets_dir,
                                    tokens_path)
            passwords_path = tokens_path.with_name("demo-passwords.json")
            passwords = set_demo_passwords(container.uow, report.tokens, passwords_path)
            give_demo_addresses(container.uow, report.tokens)
            people = demo_people(container.uow)
        finally:
            container.close()
    except demo.NotADemoDatabase as exc:
        return _refusal([str(d) for d in exc.details])
    except SQLAlchemyError as exc:
        print(f"rules-service demo: database error: {exc}", file=sys.stderr)
        return 1
    return _DemoSetUp(report, passwords, passwords_path, people)


def _print_demo(args: argparse.Namespace, settings: Settings, tokens_path: Path,
                done: _DemoSetUp) -> None:
    from rules_service.services import demo

    report = done.report
    base = f"http://{args.host}:{args.port}"
    print("rules-service demo")
    for line in report.lines:
        print(f"  {line}")
    if report.new_principals:
        print(f"  created principals: {', '.join(report.new_principals)}")
    print(f"  tokens of every demo principal: {tokens_path} (mode 600)")
    for name in (demo.DEMO_ADMIN, demo.DEMO_AUTOMATION):
        if name in report.tokens:
            print(f"  {name}: {report.tokens[name]}")
    print(f"  API {base}/v1/rulesets   docs {base}/docs   health {base}/healthz")
    print(f"  the docs are open to anyone here ({PUBLIC_DOCS_VARIABLE}=true, set by the demo)"
          if settings.public_docs else
          f"  the docs need a token or signing in ({PUBLIC_DOCS_VARIABLE} is off)")
    print(f"  sign in at {base}/sign-in as (passwords of everyone: {done.passwords_path}, "
          "mode 600):")
    for name, role in done.people:
        if name in done.passwords:
            print(f"    {name:<14} password {done.passwords[name]:<18} {role}")
    sys.stdout.flush()


DEMO_DIGEST_S = "60"
"""How often the demo's worker sends a person's gathered notices (seconds)."""


def _demo_mail_settings(args: argparse.Namespace, tokens_path: Path) -> dict[str, str]:
    """What the demo's worker is given, unless the environment says otherwise: the address
    the pages are served at (for the notices' links), a short digest, and a mail folder
    beside the tokens (shown at /mail) when no SMTP server is configured."""
    env = {"RULES_SERVICE_BASE_URL": os.environ.get("RULES_SERVICE_BASE_URL", "").strip()
           or f"http://{args.host}:{args.port}",
           "RULES_SERVICE_NOTICE_DIGEST": os.environ.get("RULES_SERVICE_NOTICE_DIGEST", "")
           .strip() or DEMO_DIGEST_S}
    if not os.environ.get("RULES_SERVICE_SMTP_HOST", "").strip():
        env["RULES_SERVICE_MAIL_DIR"] = os.environ.get("RULES_SERVICE_MAIL_DIR", "").strip() \
            or str((tokens_path.parent / "mail").resolve())
    return env


def cmd_demo(args: argparse.Namespace) -> int:
    """Sets up an empty database (a second run changes nothing and says so) and serves it.

    A database holding anything the demo did not make is refused before any migration.
    """
    problem = _check(args)
    if problem:
        print(f"rules-service demo: {problem}", file=sys.stderr)
        return 2
    settings = _settings_or_exit()
    if settings is None:
        return 2
    # The demo opens its API docs to everyone on this machine (every other server needs a
    # token or a signed-in session for them), unless the environment says otherwise. The
    # settings say so, not os.environ: a demo run in-process must not open later servers'.
    if not os.environ.get(PUBLIC_DOCS_VARIABLE, "").strip():
        settings = dataclasses.replace(settings, public_docs=True)
    rulesets_dir, tokens_path = Path(args.rulesets), Path(args.tokens)
    worker_env = _demo_mail_settings(args, tokens_path)
    settings = dataclasses.replace(
        settings, base_url=settings.base_url or worker_env["RULES_SERVICE_BASE_URL"],
        mail_dir=worker_env.get("RULES_SERVICE_MAIL_DIR", settings.mail_dir))
    if not rulesets_dir.is_dir():
        print(f"rules-service demo: {rulesets_dir} is not a directory", file=sys.stderr)
        return 2
    done = _set_up_demo(settings, rulesets_dir, tokens_path)
    if isinstance(done, int):
        return done
    _print_demo(args, settings, tokens_path, done)
    if args.no_serve:
        return 0
    from rules_service.cli.worker import start_worker_process, stop_worker_process

    # The notification worker runs beside the server and stops with it.
    worker = None if args.no_worker else start_worker_process(worker_env)
    try:
        return _serve_gunicorn(settings, args.host, args.port, args.workers, args.threads)
    finally:
        if worker is not None:
            stop_worker_process(worker)
