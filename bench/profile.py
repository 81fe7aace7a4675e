"""Profiles of the service under load: py-spy samples every thread of the gunicorn workers
while wrk loads evaluate, and the samples of request threads are summed into shares of
request wall time by what the request was doing (token lookup, version load, ...).

    .venv/bin/python -m bench.profile --db sqlite --seconds 20 --connections 32

writes bench/profiles/<label>-<db>.txt (the shares and the heaviest leaf frames) and keeps
the raw py-spy output in a temporary directory only.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import inputs as bench_inputs
from bench.common import ROOT, RULESET_NAME, BenchError
from bench.databases import DATABASES, throwaway
from bench.load import SCRIPT, THREADS, TIMEOUT, run_wrk, wrk_path
from bench.servers import gunicorn, stop_on_signals

PROFILES = ROOT / "bench" / "profiles"

# What a request thread was doing, decided by the first rule (in this order) whose marker
# appears in a sample's stack. Markers are "function (file" prefixes of py-spy frames, so
# they hold on today's code; a renamed function falls through to the generic buckets.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLite: waiting for the write lock (BEGIN IMMEDIATE)", ("_on_begin (",)),
    ("connection checkout / pre-ping", ("_do_ping_w_event (", "do_ping (", "_checkout (")),
    ("token lookup (authentication)", ("authenticate_request (", "authenticate (")),
    ("due-activation check", ("activate_due (",)),
    # After the restructure: a request waits for the writer thread's group transaction,
    # and takes its version from the process's memory.
    ("waiting for its group commit (decision, escalation, rollups)", ("decision_log.py",)),
    ("active version from memory (live state)", ("deciding_version (",)),
    ("commit", ("commit (",)),
    ("recording the decision (reads and inserts)", ("record_decision (", "add_many (",
                                                    "_record")),
    ("version load (ruleset, version, sign-offs, parse)", ("load_version (", "_active")),
    ("idempotency check and request hash", ("find_replay (", "request_hash (")),
    ("input validation", ("validate_input (",)),
    ("engine (IPC to the durable-rules worker)", ("engine/pool.py", "pool.py:")),
    ("response: marshmallow dump and JSON", ("dump (", "jsonify", "dumps (")),
    ("request parsing and Flask dispatch", ("wsgi_app (", "full_dispatch_request (")),
)
REQUEST_MARKER = "handle_request ("


def categorise(stack: str, *, rules: tuple[tuple[str, tuple[str, ...]], ...] = CATEGORIES
               ) -> str | None:
    """The category of one sampled stack of a request thread; None outside a request."""
    if REQUEST_MARKER not in stack:
        return None
    for name, markers in rules:
        if any(marker in stack for marker in markers):
            return name
    return "gunicorn and WSGI plumbing"


def summarise(raw: Path) -> tuple[dict[str, int], dict[str, int], dict[str, int], int]:
    """Samples per category, per step (lock waits counted in the step that waited) and per
    leaf frame (request threads only), and all samples."""
    categories: collections.Counter[str] = collections.Counter()
    steps: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        category = categorise(stack)
        if category is None:
            continue
        categories[category] += count
        steps[categorise(stack, rules=CATEGORIES[1:]) or category] += count
        leaf = stack.rsplit(";", 1)[-1]
        leaves[f"{category} | {leaf}"] += count
    return dict(categories), dict(steps), dict(leaves), total


def render(title: str, categories: dict[str, int], steps: dict[str, int],
           leaves: dict[str, int], total: int, run: dict[str, object]) -> str:
    """The text kept in bench/profiles: shares of request time and the heaviest leaves."""
    in_requests = sum(categories.values()) or 1
    lines = [title, "", f"load: {run}", f"samples: {total} in all, {in_requests} in request "
             "threads (the shares below are of request-thread wall time, idle included)", ""]
    for name, count in sorted(categories.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * count / in_requests:6.1f}%  {name}")
    lines += ["", "by step, a wait for the SQLite write lock counted in the step that waited:"]
    for name, count in sorted(steps.items(), key=lambda kv: -kv[1]):
        lines.append(f"{100 * count / in_requests:6.1f}%  {name}")
    lines += ["", "heaviest leaf frames (category | frame):"]
    for name, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:40]:
        lines.append(f"{100 * count / in_requests:6.1f}%  {name}")
    return "\n".join(lines) + "\n"


def py_spy() -> str:
    """The py-spy command of this environment; BenchError when it is not installed."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise BenchError("py-spy is not installed: .venv/bin/pip install py-spy")
    return pyspy


@contextmanager
def evaluate_under_load(kind: str, tmp: Path, connections: int, seconds: int,
                        warm_up_s: float) -> Iterator[tuple[Any, Any]]:
    """The service on a throwaway database, warmed up, with wrk loading evaluate for
    ``seconds`` (plus a margin) in the background; yields (database, server) two seconds
    into the load and collects wrk's output into ``load_output`` when the block ends."""
    rs = bench_inputs.ruleset()
    bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl", bench_inputs.raw_inputs(rs, 500))
    with throwaway(kind, tmp) as db, gunicorn(
            "service", "api:create_app()", env=db.env, ready_path="/healthz",
            log_dir=tmp) as server:
        url = f"{server.base}/v1/rulesets/{RULESET_NAME}/evaluate"
        token = db.tokens["demo-automation"]
        run_wrk(url, bodies=bodies, token=token, connections=connections, seconds=warm_up_s)
        env_wrk = {"BENCH_BODIES": str(bodies), "BENCH_TOKEN": token,
                   "BENCH_PATH": url.split(str(server.port), 1)[1]}
        load = subprocess.Popen(
            [wrk_path(), "-t", str(THREADS), "-c", str(connections), "-d",
             f"{seconds + 4}s", "--timeout", TIMEOUT, "-s", str(SCRIPT), url],
            env={**os.environ, **env_wrk}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            yield db, server
            out, _ = load.communicate(timeout=seconds + 60)
            load_output.append(next((ln for ln in out.splitlines() if "Requests/sec" in ln),
                                    "").strip())
        finally:
            if load.poll() is None:
                load.kill()


load_output: list[str] = []
"""wrk's Requests/sec line of each ``evaluate_under_load`` run, newest last."""


def profile(kind: str, seconds: int, connections: int, label: str) -> Path:
    """Loads evaluate with wrk and samples the gunicorn workers with py-spy meanwhile."""
    pyspy = py_spy()
    with tempfile.TemporaryDirectory(prefix="rules-profile-") as tmp_name:
        tmp = Path(tmp_name)
        with evaluate_under_load(kind, tmp, connections, seconds, 3) as (_, server):
            raw = tmp / "raw.txt"
            subprocess.run([pyspy, "record", "--pid", str(server.process.pid),
                            "--subprocesses", "--idle", "--nonblocking", "--rate", "100",
                            "--format", "raw", "--duration", str(seconds),
                            "--output", str(raw)],
                           check=True, capture_output=True, timeout=seconds + 60)
        categories, steps, leaves, total = summarise(raw)
        run = {"db": kind, "connections": connections, "seconds": seconds,
               "wrk": load_output[-1]}
        text = render(f"py-spy profile ({label}) of POST /v1/rulesets/{RULESET_NAME}/"
                      f"evaluate on {kind}", categories, steps, leaves, total, run)
    PROFILES.mkdir(parents=True, exist_ok=True)
    target = PROFILES / f"{label}-{kind}.txt"
    target.write_text(text)
    return target


def main(argv: list[str] | None = None) -> int:
    """Profiles evaluate on each requested database."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=(*DATABASES, "both"), default="both")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--label", default="before")
    args = parser.parse_args(argv)
    kinds = DATABASES if args.db == "both" else (args.db,)
    with stop_on_signals():
        try:
            for kind in kinds:
                path = profile(kind, args.seconds, args.connections, args.label)
                print(path.read_text())
        except BenchError as exc:
            print(f"bench.profile: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.profile: interrupted; every server it started is stopped",
                  file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
