"""An on-CPU profile of evaluate under load, summarised per step in microseconds of CPU
per request.

py-spy samples every thread of the gunicorn workers and of their engine worker processes
(``--subprocesses``) 200 times a second, idle threads left out (no ``--idle``): a thread
blocked on a lock, a socket or the GIL is not sampled, so each sample is CPU time spent.
Each sample goes to the first step (in the order of ``STEPS``) whose marker is in its
stack; a step's share of the samples times the CPU per request measured over the same
seconds (``bench.cpu``) is its microseconds per request.

    .venv/bin/python -m bench.cpu_profile --db sqlite --seconds 15 --connections 32

writes bench/profiles/cpu-<label>-<db>.txt.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import cpu
from bench.common import RULESET_NAME, BenchError
from bench.databases import DATABASES, PG_ADMIN_DSN
from bench.profile import PROFILES, evaluate_under_load, load_output, py_spy
from bench.servers import stop_on_signals

RATE = 200
WARM_UP_S = 10
"""Load before sampling: each worker's first requests start its engine processes and load
the rulesets (imports, parsing, compiling), which is start-up, not per-request, CPU."""

# The steps of an evaluate request, most specific first: a sample belongs to the first
# step one of whose markers ("function (file" or a path piece) is in its stack.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("live-state poller (background: its cost is per second)", ("live.py",)),
    ("engine worker process (durable-rules, decoding, encoding)",
     ("engine/worker.py", "durable/", "durable_rules")),
    ("rollups (counted in the decision's transaction)", ("rollups.py",)),
    ("group commit: SQL of the decision, key, escalation, outbox",
     ("write_decisions (",)),
    ("writer thread: queue, begin/commit, wake-ups", ("decision_log.py",)),
    ("engine call and its IPC (API side: pickle, pipe)", ("engine/pool.py",)),
    ("record building (decision record, answer)",
     ("decision_record (", "answers (", "record_view (", "new_decision_id (")),
    ("input validation (the ruleset's inputs)", ("validate_input (",)),
    ("active version from memory", ("deciding_version (",)),
    ("response: to_dict and JSON", ("json_response (", "to_dict (")),
    ("authentication", ("authenticate_request (",)),
    ("request log: id and JSON line", ("request_log.py", "pythonjsonlogger")),
    ("tracing hooks", ("tracing.py", "opentelemetry")),
    ("body: JSON parse and marshmallow load", ("openapi.py",)),
    ("Flask: routing, context, hooks, response object", ("flask/", "werkzeug/")),
    ("gunicorn: accept, HTTP parse, write", ("gunicorn/",)),
)
OTHER = "other (outside any step above)"


def step_of(stack: str) -> str:
    """The step one sampled stack belongs to."""
    for name, markers in STEPS:
        if any(marker in stack for marker in markers):
            return name
    return OTHER


def summarise(raw: Path) -> tuple[dict[str, int], dict[str, int], int]:
    """Samples per step and per (step, leaf frame), and all samples."""
    steps: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        step = step_of(stack)
        steps[step] += count
        leaves[f"{step} | {stack.rsplit(';', 1)[-1]}"] += count
    return dict(steps), dict(leaves), total


def render(title: str, steps: dict[str, int], leaves: dict[str, int], total: int,
           cpu_ms: dict[str, Any], run: dict[str, Any]) -> str:
    """The per-step table (share of on-CPU samples, microseconds per request)."""
    tree_us = 1000 * (cpu_ms.get("tree") or 0.0)
    sampled_us = tree_us - 1000 * (cpu_ms.get("database") or 0.0)
    lines = [title, "", f"load: {run}", f"CPU ms per request (same seconds): {cpu_ms}",
             f"on-CPU samples: {total} at {RATE}/s; microseconds below = share x "
             f"{sampled_us:.0f} us (the server's tree, database backends excluded)", "",
             "| step | share | us/request |", "|---|---:|---:|"]
    for name, count in sorted(steps.items(), key=lambda kv: -kv[1]):
        share = count / total if total else 0.0
        lines.append(f"| {name} | {100 * share:.1f}% | {share * sampled_us:.0f} |")
    lines += ["", "heaviest leaf frames (step | frame):"]
    for name, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:40]:
        lines.append(f"{100 * count / (total or 1):6.1f}%  {name}")
    return "\n".join(lines) + "\n"


def profile(kind: str, seconds: int, connections: int, label: str) -> Path:
    """Loads evaluate with wrk, samples on-CPU stacks and the tree's CPU meanwhile."""
    pyspy = py_spy()
    with tempfile.TemporaryDirectory(prefix="rules-cpu-profile-") as tmp_name:
        tmp = Path(tmp_name)
        with evaluate_under_load(kind, tmp, connections, seconds, WARM_UP_S) as (db, server):
            backends = (cpu.postgres_backends(PG_ADMIN_DSN, db.url.rsplit("/", 1)[1])()
                        if kind == "postgresql" else None)
            raw = tmp / "raw.txt"
            before, started = cpu.sample(server.process.pid, backends), _answered(tmp)
            subprocess.run([pyspy, "record", "--pid", str(server.process.pid),
                            "--subprocesses", "--nonblocking", "--rate", str(RATE),
                            "--format", "raw", "--duration", str(seconds),
                            "--output", str(raw)],
                           check=True, capture_output=True, timeout=seconds + 60)
            after, finished = cpu.sample(server.process.pid, backends), _answered(tmp)
        cpu_ms = cpu.per_request_ms(before, after, finished - started)
        steps, leaves, total = summarise(raw)
        run = {"db": kind, "connections": connections, "seconds": seconds,
               "requests_in_window": finished - started, "wrk": load_output[-1]}
        text = render(f"on-CPU profile ({label}) of POST /v1/rulesets/{RULESET_NAME}/"
                      f"evaluate on {kind}", steps, leaves, total, cpu_ms, run)
    PROFILES.mkdir(parents=True, exist_ok=True)
    target = PROFILES / f"cpu-{label}-{kind}.txt"
    target.write_text(text)
    return target


def _answered(logdir: Path) -> int:
    """Requests answered so far: the service's request log has one line per request."""
    path = logdir / "service.log"
    with path.open("rb") as f:
        return sum(1 for line in f if b'"rules_service.request"' in line)


def main(argv: list[str] | None = None) -> int:
    """Profiles evaluate on each requested database."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=(*DATABASES, "both"), default="both")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--label", default="after")
    args = parser.parse_args(argv)
    kinds = DATABASES if args.db == "both" else (args.db,)
    with stop_on_signals():
        try:
            for kind in kinds:
                print(profile(kind, args.seconds, args.connections, args.label).read_text())
        except BenchError as exc:
            print(f"bench.cpu_profile: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench.cpu_profile: interrupted; every server it started is stopped",
                  file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
