"""The CPU budget of one evaluate, step by step, measured where no other thread interferes.

Each step is run a few thousand times in one thread of this process and timed with
``time.thread_time`` (CPU, not wall time), so a busy machine moves the figures far less
than it moves a load test; the engine's worker process is read with psutil. The steps are
the ones an evaluate request goes through, in order:

- the framework: a no-op Flask app through Flask's test client (the baseline), and the
  service's evaluate as a dry run with the in-process reference evaluator (so: routing,
  authentication, the body and query, validation, the response, the log line and the
  metrics; no engine, no write) through the same test client;
- validation of the input against the ruleset, and building the decision record;
- the engine: durable-rules in this process (the floor: what the engine costs without any
  process boundary), one input per round trip to a worker process, and eight per round
  trip (what gathering concurrent calls gives): the calling thread's CPU and the worker's;
- the write: one decision per transaction and eight per transaction
  (``write_decisions`` in this thread), and one decision through the group-commit store
  from this thread (the hand-off to the writer thread and back).

    .venv/bin/python -m bench.cpu_budget --database sqlite

prints one JSON object (microseconds of CPU per decision) and a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import inputs as bench_inputs
from bench.common import RULESET_NAME
from bench.databases import DATABASES, throwaway

Step = Callable[[int], object]


def cpu_us(step: Step, n: int, warm_up: int = 200) -> float:
    """Microseconds of this thread's CPU per call of ``step(i)``, after a warm-up."""
    for i in range(warm_up):
        step(i)
    started = time.thread_time()
    for i in range(n):
        step(i)
    return round((time.thread_time() - started) * 1e6 / n, 1)


def _process_cpu_s(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def engine_figures(n: int) -> dict[str, float]:
    """The engine's CPU per input: in-process, and through a one-worker pool one input and
    eight inputs per round trip (caller and worker apart)."""
    from rules_service.domain.inputs import validate_input
    from rules_service.engine.compiler import compile_ruleset
    from rules_service.engine.pool import EnginePool
    from rules_service.engine.worker import Engine

    rs = bench_inputs.ruleset()
    data = [validate_input(rs, raw) for raw in bench_inputs.raw_inputs(rs, 1000)]
    compiled = compile_ruleset(rs, index=True)
    engine = Engine()
    engine.load(compiled.key, compiled.to_wire())
    out = {"engine in this process (durable-rules alone)":
           cpu_us(lambda i: engine.evaluate(compiled.key, data[i % 1000]), n)}
    with EnginePool(workers=1) as pool:
        pool.evaluate(rs, data[0])
        pids = pool.worker_pids()
        for per_trip in (1, 8):
            def step(i: int, k: int = per_trip) -> object:
                start = (i * k) % (1000 - k)
                return pool.evaluate_many(rs, data[start:start + k])
            calls = max(1, n // per_trip)
            cpu_us(step, 50)
            worker_before = _process_cpu_s(pids)
            caller = cpu_us(step, calls, warm_up=0)
            worker = (_process_cpu_s(pids) - worker_before) * 1e6 / (calls * per_trip)
            out[f"engine pool, {per_trip} per round trip: calling thread"] = \
                round(caller / per_trip, 1)
            out[f"engine pool, {per_trip} per round trip: worker process"] = round(worker, 1)
    return out


def service_figures(kind: str, n: int) -> dict[str, float]:
    """The framework, the request's own steps and the write, on a throwaway database."""
    from flask import Flask

    from api import create_app
    from rules_service.adapters.decision_log import write_decisions
    from rules_service.bootstrap import bootstrap
    from rules_service.config import Settings
    from rules_service.domain.inputs import validate_input
    from rules_service.engine.reference import ReferenceEvaluator
    from rules_service.services import decisions

    rs = bench_inputs.ruleset()
    raws = bench_inputs.raw_inputs(rs, 1000)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rules-budget-") as tmp, \
            throwaway(kind, Path(tmp)) as db:
        container = bootstrap(Settings(database_url=db.url), evaluator=ReferenceEvaluator())
        app = create_app(container=container)
        # The log line is built and formatted as in production, then dropped here.
        logging.getLogger().handlers[:] = [logging.NullHandler()]
        client = app.test_client()
        headers = {"Authorization": f"Bearer {db.tokens['demo-automation']}"}
        url = f"/v1/rulesets/{RULESET_NAME}/evaluate"
        noop = Flask("noop")
        noop.post("/")(lambda: {"ok": True})
        noop_client = noop.test_client()
        out["no-op Flask app through the test client (baseline)"] = cpu_us(
            lambda i: noop_client.post("/", json={"input": raws[i % 1000]}, headers=headers), n)
        out["evaluate dry run, reference evaluator, through the test client"] = cpu_us(
            lambda i: client.post(url, json={"input": raws[i % 1000], "dry_run": True},
                                  headers=headers), n)
        loaded = container.live.deciding_version(RULESET_NAME, None, dry_run=False)
        out["input validation"] = cpu_us(lambda i: validate_input(loaded.ruleset,
                                                                  raws[i % 1000]), n)
        valid = [validate_input(loaded.ruleset, raw) for raw in raws]
        evaluations = ReferenceEvaluator().evaluate_many(loaded.ruleset, valid)

        def record(i: int) -> Any:
            return decisions.decision_record(
                loaded.ruleset_id, loaded.version, loaded.ruleset, evaluations[i % 1000],
                caller="bench", now=container.live.clock())
        out["decision record"] = cpu_us(record, n)
        with container.engine.connect() as connection:
            def write(i: int, k: int = 1) -> None:
                with connection.begin():
                    write_decisions(connection, [record(i * k + j) for j in range(k)])
            out["write, 1 decision per transaction (with its record)"] = cpu_us(write, n)
            out["write, 8 decisions per transaction, per decision (with records)"] = round(
                cpu_us(lambda i: write(i, 8), max(1, n // 8), warm_up=20) / 8, 1)
        store = container.decision_store
        out["group-commit store, 1 decision, calling thread only"] = cpu_us(
            lambda i: store.write([record(i)]), n)
        me = psutil.Process()
        before = sum(me.cpu_times()[:2])
        for i in range(n):
            store.write([record(i)])
        out["group-commit store, 1 decision, whole process (writer thread included)"] = round(
            (sum(me.cpu_times()[:2]) - before) * 1e6 / n, 1)
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Prints the budget of one database as JSON and as a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    figures = {**service_figures(args.database, args.calls), **engine_figures(args.calls)}
    print(json.dumps({"database": args.database, "cpu_us": figures}))
    print(f"\n| step ({args.database}) | us of CPU |\n|---|---:|")
    for name, value in figures.items():
        print(f"| {name} | {value:,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
