"""Starting the real server as a subprocess and talking to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cli_command() -> list[str]:
    """The installed console script, or the same entry point through this interpreter."""
    script = Path(sys.executable).parent / "rules-service"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from rules_service.cli import main; "
                                  "sys.exit(main())"]


def server_env(database_url: str) -> dict[str, str]:
    """The environment of a server (or CLI call) on ``database_url``."""
    env = {**os.environ,
           "RULES_SERVICE_DATABASE_URL": database_url,
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           # The tests' webhook receivers listen on this host.
           "RULES_SERVICE_WEBHOOK_ALLOW": "127.0.0.1"}
    env.pop("RULES_SERVICE_TEST_DATABASE", None)
    return env


def run_cli(workdir: Path, env: dict[str, str], *args: str) -> str:
    """One command-line call that must succeed; what it printed."""
    done = subprocess.run([*cli_command(), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def migrate_and_add_people(workdir: Path, env: dict[str, str],
                           people: dict[str, list[str]]) -> dict[str, str]:
    """``db upgrade``, then ``principals add`` for each person with its flags; the tokens
    by name."""
    run_cli(workdir, env, "db", "upgrade")
    return {name: run_cli(workdir, env, "principals", "add", name, *flags
                          ).strip().splitlines()[-1]
            for name, flags in people.items()}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """The running service and how to call it."""

    base: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def call(self, method: str, path: str, body: Any = None, who: str | None = "admin",
             ) -> tuple[int, Any, str]:
        """(status, parsed JSON or text, content type) of one request."""
        status, parsed, headers = self.exchange(method, path, body, who)
        return status, parsed, headers.get("Content-Type", "")

    def exchange(self, method: str, path: str, body: Any = None, who: str | None = "admin",
                 headers: dict[str, str] | None = None, timeout: float = 30,
                 ) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON or text, response headers) of one request with ``headers``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if who is not None:
            request.add_header("Authorization", f"Bearer {self.tokens[who]}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), exc.headers
        content_type = got.get("Content-Type", "")
        parsed = json.loads(raw) if "json" in content_type else raw.decode()
        return status, parsed, dict(got.items())


@contextmanager
def running(args: list[str], workdir: Path, env: dict[str, str], port: int,
            tokens: dict[str, str] | None = None,
            start_timeout_s: float = 120, command: list[str] | None = None) -> Iterator[Server]:
    """Runs ``rules-service ARGS`` (or ``COMMAND ARGS``) until the block ends; waits for
    /healthz first. Its output goes to ``server-PORT.log`` in ``workdir``."""
    log_path = workdir / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([*(command or cli_command()), *args], cwd=workdir, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
            yield Server(base, tokens or {}, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
