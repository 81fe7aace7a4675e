"""Servers the bench starts: gunicorn in its own process group on a free loopback port,
always stopped (the whole group) when the ``with`` block ends, error or not."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import LOOPBACK, ROOT, BenchError, http

# The settings of every server in the bench (and of the profiles): the machine kind.
# ``gunicorn(..., workers=, threads=)`` overrides them for one server.
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
WORKER_CLASS = "gthread"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running gunicorn master (leader of its own process group) and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def workers(self) -> list[psutil.Process]:
        """The gunicorn worker processes (children of the master)."""
        return psutil.Process(self.process.pid).children(recursive=False)

    def engine_workers(self) -> list[psutil.Process]:
        """Processes started by the gunicorn workers (the engine's worker processes)."""
        return [child for worker in self.workers() for child in worker.children(recursive=True)]

    def rss_mb(self) -> dict[str, Any]:
        """Resident memory of the workers and of their engine processes, in MB."""
        def mb(procs: list[psutil.Process]) -> list[float]:
            out = []
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    out.append(round(proc.memory_info().rss / 2**20, 1))
            return out
        workers, engines = mb(self.workers()), mb(self.engine_workers())
        return {"workers_mb": workers, "engine_workers_mb": engines,
                "workers_total_mb": round(sum(workers), 1),
                "engine_workers_total_mb": round(sum(engines), 1)}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL to whatever is left after the grace period."""
    if process.poll() is not None and not _group_alive(process.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(process.pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's group; not ours to stop
        return False
    return True


@contextlib.contextmanager
def gunicorn(name: str, app: str, *, env: dict[str, str], ready_path: str, log_dir: Path,
             workers: int = WORKERS, threads: int = THREADS) -> Iterator[Server]:
    """Starts ``gunicorn app`` with the bench's settings (``workers`` x ``threads``,
    gthread) and yields once it answers ``ready_path`` with every worker up; stops its
    process group on the way out."""
    port = free_port()
    log = log_dir / f"{name}.log"
    # The production settings (rules_service/gunicorn_conf.py: one JSON log line per
    # request, a control socket per master), with the bench's on top.
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:rules_service.gunicorn_conf",
           "--workers", str(workers), "--threads",
           str(threads), "--worker-class", WORKER_CLASS, "--bind", f"{LOOPBACK}:{port}",
           "--graceful-timeout", "5", "--timeout", "120", app]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(name, process, port, log)
    try:
        _wait_ready(server, ready_path, workers)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, path: str, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"{server.name} exited with {server.process.returncode} while "
                             f"starting; its log ends:\n{tail}")
        try:
            status, _, _ = http("GET", server.base + path, timeout=2)
        except OSError:
            status = 0
        if status == 200 and len(server.workers()) >= workers:
            return
        time.sleep(0.2)
    raise BenchError(f"{server.name} did not answer {path} within {START_TIMEOUT_S:.0f} s; "
                     f"see {server.log}")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turns SIGTERM into KeyboardInterrupt, so ``finally`` blocks stop every server."""
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
