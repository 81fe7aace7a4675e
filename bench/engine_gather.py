"""Concurrent single-input calls on one engine pool, in one process: what gathering saves.

THREADS threads each call ``pool.evaluate`` CALLS times on the example ruleset's inputs (as
gunicorn's request threads do, one call per request). Prints one JSON line per round: calls
per second, the calling process's CPU per call (time.process_time) and the engine workers'
CPU per call (psutil on ``pool.worker_pids()``), and the round trips the pool sent when it
counts them.

    .venv/bin/python -m bench.engine_gather --threads 8 --calls 2000 --rounds 3
    # an older checkout's pool, with this file's directory first on the path:
    PYTHONPATH=/path/to/old/checkout .venv/bin/python -m bench.engine_gather
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

import psutil

from bench import inputs as bench_inputs
from rules_service.domain.inputs import validate_input
from rules_service.engine import EnginePool


def _workers_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def run_round(pool: EnginePool, rs: Any, inputs: list[dict[str, Any]], threads: int,
              calls: int) -> dict[str, Any]:
    """One round: every thread's calls, timed; the figures per call."""
    start = threading.Barrier(threads + 1)
    fallbacks: list[str] = []

    def work(k: int) -> None:
        start.wait()
        for i in range(calls):
            evaluation = pool.evaluate(rs, inputs[(k * calls + i) % len(inputs)])
            if evaluation.fallback:
                fallbacks.append(str(evaluation.fallback_reason))

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    pids = pool.worker_pids()
    trips_before = getattr(pool, "round_trips", None)
    cpu_before, workers_before = time.process_time(), _workers_cpu(pids)
    began = time.perf_counter()
    start.wait()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - began
    cpu, workers_cpu = time.process_time() - cpu_before, _workers_cpu(pids) - workers_before
    total = threads * calls
    figures: dict[str, Any] = {
        "calls": total, "calls_per_s": round(total / elapsed),
        "process_cpu_us_per_call": round(cpu / total * 1e6, 1),
        "workers_cpu_us_per_call": round(workers_cpu / total * 1e6, 1),
        "fallbacks": len(fallbacks)}
    if trips_before is not None:
        figures["inputs_per_round_trip"] = round(total / (pool.round_trips - trips_before), 2)
    if pids != pool.worker_pids():
        figures["note"] = "a worker was replaced during the round: its CPU is not counted"
    return figures


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line per round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000, help="calls per thread")
    parser.add_argument("--workers", type=int, default=2, help="engine worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rs = bench_inputs.ruleset()
    inputs = [validate_input(rs, raw) for raw in bench_inputs.raw_inputs(rs, 500)]
    with EnginePool(workers=args.workers, recycle_after=None) as pool:
        pool.warm_up()
        for data in inputs[:50]:  # every worker has the ruleset loaded before timing
            pool.evaluate(rs, data)
        run_round(pool, rs, inputs, args.threads, 100)
        for _ in range(args.rounds):
            print(json.dumps(run_round(pool, rs, inputs, args.threads, args.calls)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
