"""gunicorn's settings for rules-service, the one place they are kept.

``rules-service serve`` and ``demo`` load this module, then apply their flags on top
(``--host``/``--port``, ``--workers``, ``--threads``). The production command loads the same
module, installed with the package, and overrides on its own command line::

    gunicorn -c python:rules_service.gunicorn_conf --bind 0.0.0.0:8080 --workers 4 \\
        'api:create_app()'

Each worker builds its own app, database pool and engine workers after the fork: never
``--preload``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger

bind = ["127.0.0.1:8080"]
workers = 1
worker_class = "gthread"
threads = 8
timeout = 30
graceful_timeout = 10
keepalive = 5

# The app logs one JSON line per request itself (api/request_log.py); gunicorn's access log
# would be a second, text line for the same request.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("RULES_SERVICE_LOG_LEVEL", "info").strip().lower() or "info"


# The request histograms of /metrics (api/metrics.py) cover every worker: each worker
# writes them to memory-mapped files in this directory, and the worker answering a scrape
# reads them all. A directory of this master's own unless the operator names one (which
# they then empty before each start).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_own_metrics_dir: list[str] = []


def _share_request_metrics() -> None:
    if not os.environ.get(METRICS_DIR_VARIABLE):
        _own_metrics_dir.append(tempfile.mkdtemp(prefix="rules-service-metrics-"))
        os.environ[METRICS_DIR_VARIABLE] = _own_metrics_dir[0]


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker, before its app is built: prometheus_client keeps its values in
    the shared directory (it chose in-memory values when the master imported it)."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges go (its histogram counts stay, as they must)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """The master stops: the metrics directory it made goes with it."""
    for path in _own_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)


def control_socket_for(bind_addresses: list[str], default_path: str) -> str:
    """This master's own control socket: beside gunicorn's default, named by its addresses.

    gunicorn 25+ gives every master on a host the same default socket: a second master
    unlinks the first one's and takes it over, and stopping either removes it for both.
    """
    name = "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", address).strip("-")
                    for address in bind_addresses) or str(os.getpid())
    return os.path.join(os.path.dirname(default_path), f"rules-service-{name}.ctl")


def on_starting(server: Any) -> None:
    """Before the master binds and opens its control socket: a socket of its own, the
    workers' shared metrics directory, and one secret key shared by every worker it forks
    when ``RULES_SERVICE_SECRET_KEY`` is unset (each worker would otherwise sign sessions
    with its own)."""
    _share_request_metrics()
    if not os.environ.get("RULES_SERVICE_SECRET_KEY", "").strip():
        os.environ["RULES_SERVICE_SECRET_KEY"] = secrets.token_hex(32)
    setting = server.cfg.settings["control_socket"]
    if server.cfg.control_socket == setting.default:  # not chosen by the operator
        server.cfg.set("control_socket", control_socket_for(server.cfg.bind, setting.default))


class RulesServiceLogger(Logger):  # type: ignore[misc,unused-ignore]
    """gunicorn's own lines (start, workers booting and exiting) in the app's log format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_format = os.environ.get("RULES_SERVICE_LOG_FORMAT", "json").strip().lower()
        if log_format != "text":
            from api.request_log import make_formatter

            for handler in self.error_log.handlers:
                handler.setFormatter(make_formatter("json"))


logger_class = RulesServiceLogger
