"""The service under gunicorn on one database, each figure next to a baseline measured in
the same run: evaluate against a plain no-op Flask endpoint (wrk, interleaved), batches
and impact replay against the reference evaluator in-process, the dashboard and /metrics on
a 1,000,000-decision table against one no-op request, the workers' memory, and evaluate
against the no-op once more with both servers under 4 gunicorn workers."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import cpu, seed
from bench.common import RULESET_NAME, http, log, timed_get
from bench.databases import PG_ADMIN_DSN, throwaway
from bench.load import run_wrk
from bench.servers import THREADS, Server, gunicorn
from rules_service.domain.ruleset import Ruleset
from rules_service.engine import ReferenceEvaluator

WRK_SECONDS = float(os.environ.get("BENCH_WRK_SECONDS", "7"))
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "2"))
CONNECTIONS = (4, 32)
BATCH_SIZE = 1000
BATCH_CALLS = int(os.environ.get("BENCH_BATCH_CALLS", "10"))
REPLAY = int(os.environ.get("BENCH_REPLAY", "10000"))
TABLE_DECISIONS = int(os.environ.get("BENCH_DECISIONS", "1000000"))
GET_REPEATS = 5
GET_BUDGET_S = float(os.environ.get("BENCH_GET_BUDGET_S", "10"))
TARGETS = ("noop", "evaluate", "explain")
RECORDING = ("evaluate", "explain")  # the targets whose requests record decisions
WARM_CONNECTIONS = 8
WARM_SECONDS = 3
# The second pair of servers: evaluate and the no-op at 32 connections, each under
# MORE_WORKERS gunicorn workers (THREADS threads each), without explain.
MORE_WORKERS = 4
MORE_WORKERS_CONNECTIONS = (32,)
MORE_WORKERS_TARGETS = ("noop", "evaluate")
MORE_WORKERS_KEY = f"workers_{MORE_WORKERS}"  # where run() puts these figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def measured_wrk(server: Server, path: str, *, bodies: Path, token: str, connections: int,
                 seconds: float, database_pids: list[int] | None = None) -> dict[str, Any]:
    """One wrk run with the CPU per request of the server's process tree (and of the
    database backends given) read before and after it."""
    before = cpu.sample(server.process.pid, database_pids)
    result = run_wrk(server.base + path, bodies=bodies, token=token,
                     connections=connections, seconds=seconds)
    after = cpu.sample(server.process.pid, database_pids)
    result["cpu_ms_per_request"] = cpu.per_request_ms(before, after, result["requests"])
    return result


def evaluate_load(svc: Server, noop: Server, bodies: Path, token: str,
                  connections_each: tuple[int, ...] = CONNECTIONS, rounds_each: int = WRK_ROUNDS,
                  seconds: float = WRK_SECONDS, database_pids: list[int] | None = None,
                  targets: tuple[str, ...] = TARGETS) -> dict[str, Any]:
    """wrk on the no-op, evaluate and evaluate with ``?explain=true`` (or the ``targets``
    among them, the no-op always included), alternating, so many rounds per connection
    count, each run with its CPU per request; each target's rate also as a ratio to the
    no-op's (``evaluate_vs_noop``, ``explain_vs_noop``)."""
    if "noop" not in targets or not set(targets) <= set(TARGETS):
        raise ValueError(f"targets must include 'noop' and come from {TARGETS}: {targets}")
    url = f"/v1/rulesets/{RULESET_NAME}/evaluate"
    urls = {"noop": url, "evaluate": url, "explain": url + "?explain=true"}
    servers = {"noop": noop, "evaluate": svc, "explain": svc}
    out: dict[str, Any] = {}
    for connections in connections_each:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(rounds_each):
            for name in targets:
                server = servers[name]
                rounds[name].append(measured_wrk(
                    server, urls[name], bodies=bodies, token=token, connections=connections,
                    seconds=seconds,
                    database_pids=database_pids if server is svc else None))
        summary: dict[str, Any] = {name: _combine(runs) for name, runs in rounds.items()}
        for name in targets:
            if name != "noop":
                summary[f"{name}_vs_noop"] = _ratio(summary[name]["req_per_s"],
                                                    summary["noop"]["req_per_s"])
        summary["rounds"] = rounds
        out[f"c{connections}"] = summary
    return out


def _warm_up(svc: Server, noop: Server, bodies: Path, token: str) -> dict[str, Any]:
    """A few seconds of evaluate on each server (engine processes started, rulesets
    loaded, pools filled) before anything is measured: the wrk result of each."""
    url = f"/v1/rulesets/{RULESET_NAME}/evaluate"
    return {name: run_wrk(server.base + url, bodies=bodies, token=token,
                          connections=WARM_CONNECTIONS, seconds=WARM_SECONDS)
            for name, server in (("noop", noop), ("evaluate", svc))}


def _recording_runs(warm: dict[str, Any], load: dict[str, Any]) -> list[dict[str, Any]]:
    """Every wrk run whose requests record decisions: the service's warm-up and each
    evaluate run, plain or explain, of ``load``."""
    return [warm["evaluate"]] + [run for summary in load.values() for name in RECORDING
                                 for run in summary["rounds"].get(name, [])]


def _decisions_vs_200(recorded: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The decisions recorded while ``runs`` ran against the 200 answers wrk counted in
    them. wrk drops the requests in flight at its deadline (at most one per connection)
    without counting them, while the service still records their decisions: the
    difference lies in 0..(the sum of the runs' connections)."""
    ok = sum(r["ok_200"] for r in runs)
    in_flight = sum(r["connections"] for r in runs)
    return {"recorded_decisions": recorded, "ok_200": ok, "recorded_minus_ok": recorded - ok,
            "bound_in_flight_at_deadlines": in_flight,
            "pass": 0 <= recorded - ok <= in_flight}


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one target: total rate, mean p50, worst p99, all non-2xx."""
    seconds = sum(r["seconds"] for r in runs)
    return {
        "req_per_s": round(sum(r["requests"] for r in runs) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(sum(r["latency_ms"]["p50"] for r in runs) / len(runs), 2),
        "p99_ms": max(r["latency_ms"]["p99"] for r in runs),
        "ok_200": sum(r["ok_200"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": sum(sum(r["socket_errors"].values()) for r in runs),
        "cpu_ms_per_request": _mean_cpu([r.get("cpu_ms_per_request") or {} for r in runs]),
    }


def _mean_cpu(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The CPU milliseconds per request of each part, averaged over the rounds."""
    keys = {k for s in samples for k in s}
    out: dict[str, Any] = {}
    for key in sorted(keys):
        values = [s[key] for s in samples if s.get(key) is not None]
        out[key] = round(sum(values) / len(values), 3) if values else None
    return out


def _settled_count(url: str, limit_s: float = 15.0) -> int:
    """The decisions count once it stops moving: requests wrk abandoned at its deadline are
    still being answered (and recorded) for a moment."""
    last = seed.count_decisions(url)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = seed.count_decisions(url)
        if now == last:
            return now
        last = now
    return last


def _growth(before: float, after: float) -> float | None:
    return round(100 * (after - before) / before, 1) if before else None


def _batch(svc: Server, token: str, raws: list[dict[str, Any]], rs: Ruleset,
           validated: list[dict[str, Any]], url_db: str) -> dict[str, Any]:
    """BATCH_CALLS evaluate-batch calls of 1000 inputs, against the reference in-process."""
    url = f"{svc.base}/v1/rulesets/{RULESET_NAME}/evaluate-batch"
    before = seed.count_decisions(url_db)
    statuses, seconds = [], 0.0
    for i in range(BATCH_CALLS):
        chunk = [raws[(i * BATCH_SIZE + j) % len(raws)] for j in range(BATCH_SIZE)]
        status, _, took = http("POST", url, token=token, body={"inputs": chunk})
        statuses.append(status)
        seconds += took
    recorded = seed.count_decisions(url_db) - before
    reference = ReferenceEvaluator()
    chunk = validated[:BATCH_SIZE]
    start = time.perf_counter()
    reference.evaluate_many(rs, chunk)
    ref_rate = len(chunk) / (time.perf_counter() - start)
    rate = recorded / seconds if seconds else 0.0
    return {"calls": BATCH_CALLS, "inputs_per_call": BATCH_SIZE,
            "statuses": sorted(set(statuses)), "recorded": recorded,
            "decisions_per_s": round(rate, 1),
            "baseline_reference_evals_per_s": round(ref_rate, 1),
            "vs_baseline": _ratio(rate, ref_rate)}


def _impact(svc: Server, token: str, rs: Ruleset, validated: list[dict[str, Any]],
            ) -> dict[str, Any]:
    """The diff of the pending change with its impact replayed over REPLAY decisions."""
    url = f"{svc.base}/v1/rulesets/{RULESET_NAME}/diff?impact={REPLAY}"
    timing, body = timed_get(url, token=token, repeats=2, budget_s=GET_BUDGET_S)
    impact = (json.loads(body).get("impact") or {}) if body else {}
    reference = ReferenceEvaluator()
    replay = (validated * (REPLAY // len(validated) + 1))[:REPLAY]
    start = time.perf_counter()
    for data in replay:  # both versions: the same rules, deciding each input twice
        reference.evaluate(rs, data)
        reference.evaluate(rs, data)
    baseline_ms = (time.perf_counter() - start) * 1000
    return {**timing, "replayed": impact.get("replayed"), "changed": impact.get("changed"),
            "baseline_reference_2x_decide_ms": round(baseline_ms, 1),
            "vs_baseline": _ratio(timing["median_ms"], baseline_ms)}


def _operations(svc: Server, noop: Server, token: str) -> dict[str, Any]:
    """The dashboard (default window and 30 days) and /metrics, against a no-op request."""
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base, _ = timed_get(noop.base + "/noop", token=token, repeats=20, budget_s=5)
    out: dict[str, Any] = {"baseline_noop_get": base}
    for key, path in (("dashboard_default", "/v1/dashboard"),
                      ("dashboard_30d", f"/v1/dashboard?since={since}"),
                      ("metrics", "/metrics")):
        timing, _ = timed_get(svc.base + path, token=token, repeats=GET_REPEATS,
                              budget_s=GET_BUDGET_S)
        timing["vs_baseline"] = _ratio(timing["median_ms"], base["median_ms"])
        out[key] = timing
    return out


def run(kind: str, workdir: Path, rs: Ruleset, raws: list[dict[str, Any]],
        validated: list[dict[str, Any]], bodies: Path) -> dict[str, Any]:
    """Every service figure on one database (created and dropped here)."""
    dbdir = workdir / kind
    dbdir.mkdir()
    with throwaway(kind, dbdir) as db:
        # Seeded decisions end before this minute, before anything the service records.
        seed_before = datetime.now(UTC)
        token = db.tokens["demo-automation"]
        with gunicorn("service", "api:create_app()", env=db.env, ready_path="/healthz",
                      log_dir=dbdir) as svc, \
                gunicorn("noop", "bench.noop:app", env={}, ready_path="/",
                         log_dir=dbdir) as noop:
            started = seed.count_decisions(db.url)
            log(f"{kind}: warm-up")
            warm = _warm_up(svc, noop, bodies, token)
            rss_warm = svc.rss_mb()
            backends = _backends(kind, db.url)
            log(f"{kind}: evaluate and no-op under wrk")
            load = evaluate_load(svc, noop, bodies, token, database_pids=backends)
            recorded = _settled_count(db.url) - started
            rss_after = svc.rss_mb()
            runs = _recording_runs(warm, load)
            consistency = _decisions_vs_200(recorded, runs)
            memory = {
                "after_warmup": rss_warm, "after_load": rss_after,
                "evaluations_between": sum(r["requests"] for r in runs[1:]),
                "workers_growth_pct": _growth(rss_warm["workers_total_mb"],
                                              rss_after["workers_total_mb"]),
                "engine_workers_growth_pct": _growth(rss_warm["engine_workers_total_mb"],
                                                     rss_after["engine_workers_total_mb"]),
            }
            log(f"{kind}: evaluate-batch")
            batch = _batch(svc, token, raws, rs, validated, db.url)
            log(f"{kind}: impact replay")
            impact = _impact(svc, token, rs, validated)
            if TABLE_DECISIONS:
                log(f"{kind}: seeding decisions")
                seeded = seed.seed(db.url, TABLE_DECISIONS, seed_before)
                seeded["table_total"] = seed.count_decisions(db.url)
                log(f"{kind}: dashboard and /metrics")
                operations = _operations(svc, noop, token)
            else:
                seeded, operations = {}, {}
        # Only now, with the first pair stopped: no other service process serves or folds
        # decisions into the rollups on this database while the second pair is measured.
        log(f"{kind}: evaluate and no-op under wrk, {MORE_WORKERS} workers each")
        more_workers = _more_workers(kind, db.url, db.env, token, bodies, dbdir)
    return {"evaluate": load, "decisions_vs_200": consistency, "memory": memory,
            "batch": batch, "impact": impact, "seeded": seeded, "operations": operations,
            MORE_WORKERS_KEY: more_workers}


def _backends(kind: str, url: str) -> list[int] | None:
    """On PostgreSQL, the backends connected to the bench database right now (after a
    warm-up: the service's pools); None on SQLite."""
    if kind != "postgresql":
        return None
    return cpu.postgres_backends(PG_ADMIN_DSN, url.rsplit("/", 1)[1])()


def _more_workers(kind: str, url: str, env: dict[str, str], token: str, bodies: Path,
                  log_dir: Path) -> dict[str, Any]:
    """Evaluate against the no-op with MORE_WORKERS gunicorn workers (THREADS threads) on
    each, on the database the main figures used (with whatever the batches and the seeding
    left in it): a warm-up, then wrk at MORE_WORKERS_CONNECTIONS alternating the two, each
    run with its CPU per request (and the database backends' on PostgreSQL); its recorded
    decisions are checked against its own 200 answers."""
    with gunicorn(f"service-workers{MORE_WORKERS}", "api:create_app()", env=env,
                  ready_path="/healthz", log_dir=log_dir, workers=MORE_WORKERS) as svc, \
            gunicorn(f"noop-workers{MORE_WORKERS}", "bench.noop:app", env={},
                     ready_path="/", log_dir=log_dir, workers=MORE_WORKERS) as noop:
        started = seed.count_decisions(url)
        warm = _warm_up(svc, noop, bodies, token)
        load = evaluate_load(svc, noop, bodies, token,
                             connections_each=MORE_WORKERS_CONNECTIONS,
                             database_pids=_backends(kind, url),
                             targets=MORE_WORKERS_TARGETS)
        recorded = _settled_count(url) - started
        rss = svc.rss_mb()
    return {"workers": MORE_WORKERS, "threads": THREADS, "evaluate": load,
            "decisions_vs_200": _decisions_vs_200(recorded, _recording_runs(warm, load)),
            "memory_after_load": rss}
