"""Evaluate under wrk on one database, nothing else: a quick before/after of a change to the
write path. Same servers, ruleset, bodies and wrk settings as ``bench.service``.

    .venv/bin/python -m bench.evaluate_quick --database postgresql --connections 8 --rounds 3
    # an older checkout, with this file copied into its bench/:
    cd OLD && PYTHONPATH=$PWD /path/to/.venv/bin/python -m bench.evaluate_quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import inputs as bench_inputs
from bench.common import RULESET_NAME
from bench.databases import throwaway
from bench.load import run_wrk
from bench.servers import gunicorn


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line: requests/s and latency of each round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explain", action="store_true",
                        help="the no-op, evaluate and evaluate?explain=true, interleaved, "
                             "with their ratios to the no-op (as make bench reports them)")
    args = parser.parse_args(argv)
    if args.explain:
        return _explain_figures(args)
    rs = bench_inputs.ruleset()
    with tempfile.TemporaryDirectory(prefix="rules-quick-") as name:
        tmp = Path(name)
        bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl",
                                           bench_inputs.raw_inputs(rs, 1000))
        with throwaway(args.database, tmp) as db, gunicorn(
                "service", "api:create_app()", env=db.env, ready_path="/healthz",
                log_dir=tmp) as svc:
            url = svc.base + f"/v1/rulesets/{RULESET_NAME}/evaluate"
            token = db.tokens["demo-automation"]
            run_wrk(url, bodies=bodies, token=token, connections=args.connections, seconds=3)
            rounds = [run_wrk(url, bodies=bodies, token=token, connections=args.connections,
                              seconds=args.seconds) for _ in range(args.rounds)]
    print(json.dumps({"database": args.database, "connections": args.connections,
                      "req_per_s": [r["req_per_s"] for r in rounds],
                      "p50_ms": [r["latency_ms"].get("p50") for r in rounds],
                      "p99_ms": [r["latency_ms"].get("p99") for r in rounds],
                      "non_2xx": sum(r["non_2xx"] for r in rounds)}))
    return 0


def _explain_figures(args: argparse.Namespace) -> int:
    """Evaluate with and without ``?explain=true`` against the no-op baseline."""
    from bench.service import evaluate_load  # the measurement make bench makes

    rs = bench_inputs.ruleset()
    with tempfile.TemporaryDirectory(prefix="rules-quick-") as name:
        tmp = Path(name)
        bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl",
                                           bench_inputs.raw_inputs(rs, 1000))
        with throwaway(args.database, tmp) as db, gunicorn(
                "service", "api:create_app()", env=db.env, ready_path="/healthz",
                log_dir=tmp) as svc, gunicorn("noop", "bench.noop:app", env={},
                                              ready_path="/", log_dir=tmp) as noop:
            token = db.tokens["demo-automation"]
            url = svc.base + f"/v1/rulesets/{RULESET_NAME}/evaluate"
            run_wrk(url, bodies=bodies, token=token, connections=args.connections, seconds=3)
            load = evaluate_load(svc, noop, bodies, token, (args.connections,), args.rounds,
                                  args.seconds)[f"c{args.connections}"]
    print(json.dumps({"database": args.database, "connections": args.connections,
                      **{k: load[k]["req_per_s"] for k in ("noop", "evaluate", "explain")},
                      "evaluate_vs_noop": load["evaluate_vs_noop"],
                      "explain_vs_noop": load["explain_vs_noop"],
                      "p50_ms": {k: load[k]["p50_ms"] for k in ("noop", "evaluate", "explain")},
                      "p99_ms": {k: load[k]["p99_ms"] for k in ("noop", "evaluate", "explain")},
                      "cpu_ms_per_request": {k: load[k]["cpu_ms_per_request"]
                                             for k in ("noop", "evaluate", "explain")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
