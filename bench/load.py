"""wrk, the load generator: installed from Debian's packages when missing, driven with
bench/wrk/post.lua, its counts and latencies read back as a dict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchError

SCRIPT = ROOT / "bench" / "wrk" / "post.lua"
THREADS = 2
TIMEOUT = "10s"


def wrk_path() -> str:
    """The wrk executable; `make bench` installs it with apt-get when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    return found


def run_wrk(url: str, *, bodies: Path, token: str, connections: int,
            seconds: float) -> dict[str, Any]:
    """Loads ``url`` (a loopback URL) for ``seconds``: requests/s, latency and statuses."""
    base, _, path = url.partition("://")[2].partition("/")
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_TOKEN": token,
           "BENCH_PATH": "/" + path}
    cmd = [wrk_path(), "-t", str(min(THREADS, connections)), "-c", str(connections), "-d",
           f"{seconds:.0f}s", "--timeout", TIMEOUT, "-s", str(SCRIPT), url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {done.returncode}) on {url}:\n"
                         f"{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    statuses = {int(k): v for k, v in raw["statuses"].items()}
    seconds_run = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "connections": connections,
        "seconds": round(seconds_run, 2),
        "requests": raw["requests"],
        "req_per_s": round(raw["requests"] / seconds_run, 1) if seconds_run else 0.0,
        "ok_200": statuses.get(200, 0),
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "socket_errors": {k: v for k, v in raw["errors"].items() if k != "status"},
        "latency_ms": {k: round(v / 1000, 2) for k, v in lat.items()},
    }
