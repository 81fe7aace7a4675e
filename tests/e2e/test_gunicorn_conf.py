"""gunicorn from rules_service/gunicorn_conf.py: `rules-service serve` and the README's
production command on one host, each master with its own control socket, logging one JSON
line per request."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import throwaway_database
from tests.e2e.support import Server, cli_command, free_port, running, server_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
PRODUCTION_COMMAND = [str(BIN / "gunicorn"), "-c", "python:rules_service.gunicorn_conf"]


class Host:
    """Two masters on one host: A by `rules-service serve`, B by the production command."""

    def __init__(self, workdir: Path, home: Path, env: dict[str, str], stack: ExitStack,
                 ports: tuple[int, int]) -> None:
        self.workdir, self.home, self.env, self.stack = workdir, home, env, stack
        self.port_a, self.port_b = ports
        self.a: Server
        self.b: Server

    def socket(self, port: int) -> Path:
        return self.home / ".gunicorn" / f"rules-service-127.0.0.1-{port}.ctl"

    def log(self, port: int) -> str:
        return (self.workdir / f"server-{port}.log").read_text()


def control(socket: Path, command: str) -> dict[str, Any]:
    """One gunicornc command on one control socket, its JSON answer."""
    done = subprocess.run([str(BIN / "gunicornc"), "-s", str(socket), "-c", command, "-j"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, (socket, done.stdout, done.stderr)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def get(base: str, path: str, request_id: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(base + path, headers={
        "X-Request-ID": request_id, "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers["X-Request-ID"]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    workdir = tmp_path_factory.mktemp("masters")
    home = workdir / "home"
    home.mkdir()
    with throwaway_database(workdir) as url, ExitStack() as stack:
        # gunicorn's default control socket lives under $XDG_RUNTIME_DIR or $HOME.
        env = {**server_env(url), "HOME": str(home)}
        env.pop("XDG_RUNTIME_DIR", None)
        subprocess.run([*cli_command(), "db", "upgrade"], cwd=workdir, env=env, check=True,
                       capture_output=True, timeout=120)
        done = subprocess.run([*cli_command(), "principals", "add", "admin", "--admin"],
                              cwd=workdir, env=env, check=True, capture_output=True,
                              text=True, timeout=120)
        tokens = {"admin": done.stdout.strip().splitlines()[-1]}
        h = Host(workdir, home, env, stack, (free_port(), free_port()))
        h.a = stack.enter_context(running(
            ["serve", "--port", str(h.port_a), "--workers", "2"], workdir, env, h.port_a,
            tokens))
        h.b = stack.enter_context(running(
            ["--bind", f"127.0.0.1:{h.port_b}", "api:create_app()"], workdir, env, h.port_b,
            tokens, command=PRODUCTION_COMMAND))
        yield h


def test_each_master_answers_on_its_own_control_socket_with_its_own_workers(
        host: Host) -> None:
    assert host.a.process is not None and host.b.process is not None
    stats_a = control(host.socket(host.port_a), "show stats")
    stats_b = control(host.socket(host.port_b), "show stats")
    assert stats_a["pid"] == host.a.process.pid
    assert stats_b["pid"] == host.b.process.pid
    # The flag overrides the file for serve (2); the production command keeps its 1.
    assert stats_a["workers_target"] == 2 and stats_b["workers_target"] == 1
    assert not (host.home / ".gunicorn" / "gunicorn.ctl").exists()


def test_every_request_is_one_json_line_and_every_line_is_json(host: Host) -> None:
    token = host.a.tokens["admin"]
    sent = []
    for server, port in ((host.a, host.port_a), (host.b, host.port_b)):
        for n in range(6):
            request_id = f"e2e-{port}-{n}"
            assert get(server.base, "/v1/rulesets", request_id, token) == (200, request_id)
            sent.append((port, request_id))
    for port in (host.port_a, host.port_b):
        log = host.log(port)
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        requests = [line for line in lines if line["logger"] == "rules_service.request"]
        for p, request_id in sent:
            mine = [line for line in requests if line.get("request_id") == request_id]
            assert len(mine) == (1 if p == port else 0), (request_id, log[-2000:])
            if mine:
                assert mine[0]["caller"] == "admin" and mine[0]["route"] == "/v1/rulesets"
                assert mine[0]["status"] == 200 and mine[0]["duration_ms"] > 0
        # No second, text access line (gunicorn's access log would say "GET /v1/rulesets").
        assert "HTTP/1.1" not in log
        assert token not in log


def request_count(base: str, token: str, route: str) -> float:
    """``rules_service_http_request_duration_seconds_count`` of GET ``route`` 2xx."""
    request = urllib.request.Request(base + "/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    wanted = (f'rules_service_http_request_duration_seconds_count{{method="GET",'
              f'route="{route}",status_class="2xx"}}')
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(wanted))


@pytest.mark.parametrize("which", ["a", "b"])
def test_request_histograms_count_every_workers_requests_whichever_answers(
        host: Host, which: str) -> None:
    server = host.a if which == "a" else host.b  # A runs 2 workers, B one
    token = host.a.tokens["admin"]
    before = request_count(server.base, token, "/v1/rulesets")
    for n in range(20):  # a new connection each: gunicorn spreads them over its workers
        assert get(server.base, "/v1/rulesets", f"hist-{which}-{n}", token)[0] == 200
    counts = {request_count(server.base, token, "/v1/rulesets") for _ in range(6)}
    assert counts == {before + 20}


def test_stopping_one_master_leaves_the_others_control_socket_working(host: Host) -> None:
    assert host.a.process is not None and host.b.process is not None
    host.a.process.terminate()
    host.a.process.wait(timeout=60)
    assert not host.socket(host.port_a).exists()
    assert control(host.socket(host.port_b), "show stats")["pid"] == host.b.process.pid

