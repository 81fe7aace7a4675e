"""CLI: running the HTTP API (``serve``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Registers this module's subcommands."""
    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on "
                                                        f"(default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, default=1,
                   help="gunicorn worker processes (default 1)")
    p.add_argument("--threads", type=int, default=8,
                   help="threads per worker (default 8)")
    p.add_argument("--dev", action="store_true",
                   help="use Werkzeug's development server instead of gunicorn")
    p.set_defaults(handler=cmd_serve)


def _check(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port must be between 0 and 65535, not {args.port}"
    if args.workers < 1 or args.threads < 1:
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
    from werkzeug.serving import run_simple

    from api import create_app

    run_simple(host, port, create_app(settings), threaded=True, use_reloader=False)
    return 0


def _serve_gunicorn(settings: Any, host: str, port: int, workers: int, threads: int) -> int:
    from gunicorn.app.base import BaseApplication

    class _Application(BaseApplication):  # type: ignore[misc,unused-ignore]
        """gunicorn with the app built in each worker (engines and pools never cross a fork)."""

        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            self.cfg.set("graceful_timeout", 10)

        def load(self) -> Any:
            from api import create_app

            return create_app(settings)

    _Application().run()
    return 0
