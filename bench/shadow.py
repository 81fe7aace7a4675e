"""What a version in shadow costs evaluate: wrk at 32 connections with and without one.

The service runs as in production (gunicorn, the production settings) with
``rules-service worker`` beside it throughout; rounds alternate between no version in
shadow and the demo's pending expense-approval version in shadow on every decision
(``sample`` 1), so drift and noise fall on both sides alike. Each round with the shadow
reports how many decisions the worker had shadowed by its end (the shadow really ran
while evaluate was measured), then waits until the worker has caught up before the shadow
is stopped, so no shadow work spills into the next round without one.

    .venv/bin/python -m bench.shadow --database sqlite --connections 32 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import inputs as bench_inputs
from bench.common import RULESET_NAME, BenchError, http
from bench.databases import throwaway
from bench.load import run_wrk
from bench.servers import gunicorn
from rules_service.cli.worker import start_worker_process, stop_worker_process

PENDING_VERSION = 2
"""The demo leaves expense-approval version 2 pending (a raised auto-approve limit)."""


def _shadow(base: str, token: str, method: str) -> dict[str, Any]:
    path = f"{base}/v1/rulesets/{RULESET_NAME}/versions/{PENDING_VERSION}/shadow"
    status, payload, _ = http(method, path, token=token,
                              body={"sample": 1.0} if method == "PUT" else None)
    if status not in (200, 204):
        raise BenchError(f"{method} shadow answered {status}: {payload[:300]!r}")
    body = json.loads(payload) if payload else {}
    return body if isinstance(body, dict) else {}


def _caught_up(base: str, token: str, limit_s: float = 60.0) -> tuple[int, float]:
    """Waits until the shadow's count stops moving (the worker has caught up), so no shadow
    work spills into the next round without one: (decisions shadowed, seconds waited)."""
    start = time.monotonic()
    last = -1
    while time.monotonic() - start < limit_s:
        count = int(_shadow(base, token, "GET").get("decisions") or 0)
        if count == last:
            break
        last = count
        time.sleep(2.0)
    return last, round(time.monotonic() - start, 1)


def shadow_cost(database: str, connections: int = 32, rounds: int = 3,
                seconds: float = 8.0) -> dict[str, Any]:
    """Evaluate's requests/s and latency without and with a version in shadow."""
    rs = bench_inputs.ruleset()
    with tempfile.TemporaryDirectory(prefix="rules-shadow-") as name:
        tmp = Path(name)
        bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl",
                                           bench_inputs.raw_inputs(rs, 1000))
        with throwaway(database, tmp) as db, gunicorn(
                "service", "api:create_app()", env=db.env, ready_path="/healthz",
                log_dir=tmp) as svc:
            worker = start_worker_process({**db.env, "RULES_SERVICE_WORKER_POLL_INTERVAL":
                                           "0.5"})
            try:
                url = svc.base + f"/v1/rulesets/{RULESET_NAME}/evaluate"
                token, admin = db.tokens["demo-automation"], db.tokens["demo-admin"]
                run_wrk(url, bodies=bodies, token=token, connections=connections, seconds=3)
                runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
                for _ in range(rounds):
                    runs["without"].append(run_wrk(url, bodies=bodies, token=token,
                                                   connections=connections, seconds=seconds))
                    _shadow(svc.base, admin, "PUT")
                    run = run_wrk(url, bodies=bodies, token=token, connections=connections,
                                  seconds=seconds)
                    run["shadowed_by_end"] = _shadow(svc.base, admin, "GET").get("decisions")
                    run["shadowed"], run["catch_up_s"] = _caught_up(svc.base, admin)
                    runs["with"].append(run)
                    _shadow(svc.base, admin, "DELETE")
            finally:
                stop_worker_process(worker)
    return {"database": database, "connections": connections, "rounds": rounds,
            **{k: _summary(v) for k, v in runs.items()},
            "with_vs_without": _ratio(runs)}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"req_per_s": [r["req_per_s"] for r in runs],
            "p50_ms": [r["latency_ms"].get("p50") for r in runs],
            "p99_ms": [r["latency_ms"].get("p99") for r in runs],
            "requests": [r["requests"] for r in runs],
            "non_2xx": sum(r["non_2xx"] for r in runs),
            **({k: [r.get(k) for r in runs] for k in ("shadowed_by_end", "shadowed",
                                                       "catch_up_s")}
               if any("shadowed" in r for r in runs) else {})}


def _ratio(runs: dict[str, list[dict[str, Any]]]) -> float | None:
    before = statistics.median(r["req_per_s"] for r in runs["without"])
    after = statistics.median(r["req_per_s"] for r in runs["with"])
    return round(after / before, 3) if before else None


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line with both sides' figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(shadow_cost(args.database, args.connections, args.rounds, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
