"""``make bench``: every figure of issue 7 in one run, each next to a baseline measured in
the same run, on SQLite and on PostgreSQL.

- engine: the reference evaluator (baseline), the durable-rules pool one call per input and
  in batches, and zen-engine (GoRules) deciding the same rules (bench/engine.py);
- per database (bench/service.py), the service under gunicorn (2 workers, gthread, 8
  threads) and a plain no-op Flask app under the same settings (the baseline): evaluate at
  4 and 32 connections with wrk (each run with its CPU per request), interleaved with the
  no-op; recorded decisions against 200 answers; evaluate-batch; impact replay of 10,000
  decisions; the dashboard and /metrics on 1,000,000 decisions; the workers' memory
  before and after the load; then, with those servers stopped, evaluate and the no-op
  once more with 4 gunicorn workers each (8 threads), at 32 connections (no explain), with
  their CPU per request and their own recorded-decisions check;
- decision tables (bench/tables.py, when that module exists): its ``run()`` dict;
- big rulesets beside the small policy (bench/big_rulesets.py): the 12-rule policy, a
  5,000-row table and 3,000 plain rules through the engine and through the app on each
  database, in the same run, with the goals' ratios.

Writes bench/results.json, prints the table and the goals as pass/fail lines, and rewrites
the "Latest run" table in bench/README.md. Exit 1 only when a figure is wrong (an engine
disagreeing with the reference, decisions lost or invented), not when a goal is missed.

Environment: BENCH_DATABASES (default "sqlite,postgresql"), BENCH_WRK_SECONDS (7),
BENCH_WRK_ROUNDS (2), BENCH_DECISIONS (1000000), BENCH_REPLAY (10000), BENCH_INPUTS (4000),
BENCH_WORKERS (2) and BENCH_THREADS (8): the gunicorn settings of every server but the
4-worker pair (which keeps BENCH_THREADS). The goals are judged on the main figures.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import big_rulesets, service
from bench import engine as engine_bench
from bench import inputs as bench_inputs
from bench.common import ROOT, BenchError, log
from bench.databases import DATABASES
from bench.load import wrk_path
from bench.servers import stop_on_signals

RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "bench" / "README.md"
N_INPUTS = int(os.environ.get("BENCH_INPUTS", "4000"))
TABLE_START = "<!-- bench:latest:start -->"
TABLE_END = "<!-- bench:latest:end -->"


def tables_figures() -> dict[str, Any] | None:
    """The decision-table bench (issue 12): ``bench.tables.run()`` when the module exists."""
    try:
        module = importlib.import_module("bench.tables")
    except ModuleNotFoundError as exc:
        if exc.name == "bench.tables":
            return None
        raise
    result: dict[str, Any] = module.run()
    return result


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's goals, one line per goal and database: the value, the target, pass/fail."""
    out: list[dict[str, Any]] = []

    def add(db: str, name: str, value: float | None, target: str, ok: bool | None) -> None:
        out.append({"db": db, "goal": name, "value": value, "target": target,
                    "pass": bool(ok) if value is not None else False})

    for db, fig in results["service"].items():
        c32 = fig["evaluate"]["c32"]
        add(db, "evaluate/no-op at 32 connections", c32["evaluate_vs_noop"], ">= 0.50",
            (c32["evaluate_vs_noop"] or 0) >= 0.5)
        add(db, "evaluate p99 at 32 connections (ms)", c32["evaluate"]["p99_ms"], "< 25",
            c32["evaluate"]["p99_ms"] < 25)
        cpu_ratio = _ratio_of(c32["evaluate"].get("cpu_ms_per_request") or {},
                              c32["noop"].get("cpu_ms_per_request") or {})
        add(db, "CPU per evaluate / CPU per no-op, whole tree, 32 connections", cpu_ratio,
            "< 3", cpu_ratio is not None and cpu_ratio < 3)
        floor = 10_000 if db == "postgresql" else 5_000
        rate = fig["batch"]["decisions_per_s"]
        add(db, "evaluate-batch recorded decisions/s", rate, f">= {floor}", rate >= floor)
        ops = fig.get("operations") or {}
        for key, label, limit in (("dashboard_default", "dashboard, default window (ms)", 200),
                                  ("dashboard_30d", "dashboard, 30 days (ms)", 200),
                                  ("metrics", "/metrics (ms)", 50)):
            value = ops.get(key, {}).get("median_ms")
            add(db, f"{label} on {fig['seeded'].get('table_total', 0):,} decisions", value,
                f"< {limit}", value is not None and value < limit)
        impact = fig["impact"]["median_ms"]
        add(db, f"impact replay of {fig['impact']['replayed']} decisions (ms)", impact,
            "< 2000", impact < 2000)
        mem = fig["memory"]
        for key, label in (("workers_growth_pct", "API workers"),
                           ("engine_workers_growth_pct", "engine workers")):
            value = mem[key]
            add(db, f"memory growth of the {label} (%) over "
                    f"{mem['evaluations_between']:,} evaluations", value, "within 10",
                value is not None and abs(value) <= 10)
    for where, fig in (results.get("big") or {}).items():
        if not isinstance(fig, dict) or "goals" not in fig:
            continue
        ratios = fig["goals"]
        add(where, "5,000-row table single p50 / 12-rule policy's", ratios[
            "table_p50_over_policy"], "<= 2", ratios["table_p50_over_policy"] <= 2)
        add(where, "5,000-row table batch rate / 12-rule policy's", ratios[
            "table_batch_share_of_policy"], ">= 0.25", ratios["table_batch_share_of_policy"]
            >= 0.25)
        add(where, "3,000 plain rules batched decisions/s", ratios["plain_batch_per_s"],
            ">= 1000", ratios["plain_batch_per_s"] >= 1000)
    if results.get("big"):
        load_s = results["big"]["load_table_file_s"]
        add("-", "loading a 5,000-row table file (s)", load_s, "< 1", load_s < 1)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


CPU_PARTS = "API / engine / database / tree"


def _cpu_cells(cpu: dict[str, Any]) -> str:
    """CPU_PARTS in that order ("-" for the database on SQLite and for the no-op)."""
    return " / ".join(_fmt(cpu.get(k)) for k in ("api", "engine", "database", "tree"))


def _latency_cell(figures: dict[str, Any]) -> str:
    return f"{figures['p50_ms']} / {figures['p99_ms']}"


def _consistency_cell(check: dict[str, Any]) -> str:
    return f"{check['recorded_minus_ok']} (0..{check['bound_in_flight_at_deadlines']})"


def _ratio_of(cpu: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    tree, base = cpu.get("tree"), baseline.get("tree")
    return round(tree / base, 2) if tree is not None and base else None


def table(results: dict[str, Any]) -> str:
    """The results as Markdown: one row per figure, one column per database."""
    dbs = list(results["service"])
    lines = [f"| figure | {' | '.join(dbs)} |", f"|---|{'---|' * len(dbs)}"]

    def row(label: str, pick: Any) -> None:
        cells = []
        for db in dbs:
            try:
                cells.append(_fmt(pick(results["service"][db])))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {label} | {' | '.join(cells)} |")

    for c in service.CONNECTIONS:
        k = f"c{c}"
        row(f"no-op req/s, {c} conn (baseline)",
            lambda f, k=k: f["evaluate"][k]["noop"]["req_per_s"])
        row(f"evaluate req/s, {c} conn", lambda f, k=k: f["evaluate"][k]["evaluate"]["req_per_s"])
        row(f"evaluate / no-op, {c} conn", lambda f, k=k: f["evaluate"][k]["evaluate_vs_noop"])
        row(f"evaluate ?explain=true req/s, {c} conn",
            lambda f, k=k: f["evaluate"][k]["explain"]["req_per_s"])
        row(f"evaluate ?explain=true / no-op, {c} conn",
            lambda f, k=k: f["evaluate"][k]["explain_vs_noop"])
        row(f"evaluate p50 / p99 ms, {c} conn",
            lambda f, k=k: f"{f['evaluate'][k]['evaluate']['p50_ms']} / "
                           f"{f['evaluate'][k]['evaluate']['p99_ms']}")
        row(f"no-op p50 / p99 ms, {c} conn",
            lambda f, k=k: f"{f['evaluate'][k]['noop']['p50_ms']} / "
                           f"{f['evaluate'][k]['noop']['p99_ms']}")
        row(f"evaluate non-2xx, {c} conn", lambda f, k=k: f["evaluate"][k]["evaluate"]["non_2xx"])
        row(f"no-op CPU ms/request: {CPU_PARTS}, {c} conn (baseline)",
            lambda f, k=k: _cpu_cells(f["evaluate"][k]["noop"]["cpu_ms_per_request"]))
        row(f"evaluate CPU ms/request: {CPU_PARTS}, {c} conn",
            lambda f, k=k: _cpu_cells(f["evaluate"][k]["evaluate"]["cpu_ms_per_request"]))
        row(f"evaluate CPU / no-op CPU, {c} conn",
            lambda f, k=k: _ratio_of(f["evaluate"][k]["evaluate"]["cpu_ms_per_request"],
                                     f["evaluate"][k]["noop"]["cpu_ms_per_request"]))
        row(f"evaluate ?explain=true CPU ms/request: {CPU_PARTS}, {c} conn",
            lambda f, k=k: _cpu_cells(f["evaluate"][k]["explain"]["cpu_ms_per_request"]))
    row("recorded decisions - 200 answers (bound)",
        lambda f: _consistency_cell(f["decisions_vs_200"]))
    more, w = service.MORE_WORKERS_KEY, f"{service.MORE_WORKERS} workers"
    for c in service.MORE_WORKERS_CONNECTIONS:
        k = f"c{c}"
        row(f"no-op req/s, {c} conn, {w} (baseline)",
            lambda f, k=k: f[more]["evaluate"][k]["noop"]["req_per_s"])
        row(f"evaluate req/s, {c} conn, {w}",
            lambda f, k=k: f[more]["evaluate"][k]["evaluate"]["req_per_s"])
        row(f"evaluate / no-op, {c} conn, {w}",
            lambda f, k=k: f[more]["evaluate"][k]["evaluate_vs_noop"])
        row(f"evaluate p50 / p99 ms, {c} conn, {w}",
            lambda f, k=k: _latency_cell(f[more]["evaluate"][k]["evaluate"]))
        row(f"no-op p50 / p99 ms, {c} conn, {w}",
            lambda f, k=k: _latency_cell(f[more]["evaluate"][k]["noop"]))
        row(f"evaluate / no-op non-2xx, {c} conn, {w}",
            lambda f, k=k: f"{f[more]['evaluate'][k]['evaluate']['non_2xx']} / "
                           f"{f[more]['evaluate'][k]['noop']['non_2xx']}")
        row(f"no-op CPU ms/request: {CPU_PARTS}, {c} conn, {w} (baseline)",
            lambda f, k=k: _cpu_cells(f[more]["evaluate"][k]["noop"]["cpu_ms_per_request"]))
        row(f"evaluate CPU ms/request: {CPU_PARTS}, {c} conn, {w}",
            lambda f, k=k: _cpu_cells(
                f[more]["evaluate"][k]["evaluate"]["cpu_ms_per_request"]))
        row(f"evaluate CPU / no-op CPU, {c} conn, {w}",
            lambda f, k=k: _ratio_of(f[more]["evaluate"][k]["evaluate"]["cpu_ms_per_request"],
                                     f[more]["evaluate"][k]["noop"]["cpu_ms_per_request"]))
    row(f"recorded decisions - 200 answers (bound), {w}",
        lambda f: _consistency_cell(f[more]["decisions_vs_200"]))
    row("evaluate-batch decisions/s (1000 per call)", lambda f: f["batch"]["decisions_per_s"])
    row("  reference evaluator in-process evals/s (baseline)",
        lambda f: f["batch"]["baseline_reference_evals_per_s"])
    row("impact replay of 10k decisions, ms", lambda f: f["impact"]["median_ms"])
    row("  reference deciding them twice in-process, ms (baseline)",
        lambda f: f["impact"]["baseline_reference_2x_decide_ms"])
    row("decisions in the table for the figures below", lambda f: f["seeded"]["table_total"])
    row("dashboard, default window, ms",
        lambda f: f["operations"]["dashboard_default"]["median_ms"])
    row("dashboard, 30 days, ms", lambda f: f["operations"]["dashboard_30d"]["median_ms"])
    row("/metrics, ms", lambda f: f["operations"]["metrics"]["median_ms"])
    row("  one no-op GET, ms (baseline)",
        lambda f: f["operations"]["baseline_noop_get"]["median_ms"])
    row("API workers RSS MB warm -> after load",
        lambda f: f"{f['memory']['after_warmup']['workers_total_mb']} -> "
                  f"{f['memory']['after_load']['workers_total_mb']} "
                  f"({f['memory']['workers_growth_pct']}%)")
    row("engine workers RSS MB warm -> after load",
        lambda f: f"{f['memory']['after_warmup']['engine_workers_total_mb']} -> "
                  f"{f['memory']['after_load']['engine_workers_total_mb']} "
                  f"({f['memory']['engine_workers_growth_pct']}%)")
    eng = results["engine"]
    lines += ["", "| engine (in-process, same inputs) | evals/s | x reference |", "|---|---|---|"]
    for key, value in eng["figures"].items():
        lines.append(f"| {key} | {value:,.0f} | {eng['ratios_vs_baseline'][key]:.3f} |")
    zen = eng["zen_engine"]
    if zen.get("installed"):
        lines.append(f"\nzen-engine agrees with the reference evaluator on the fired rules of "
                     f"{zen['agree_fired_rules']:,} and the outcome of {zen['agree_outcome']:,} "
                     f"of {zen['inputs']:,} inputs; the durable-rules pool disagrees on "
                     f"{eng['engine_reference_disagreements']}.")
    lines += ["", "| goal | db | value | target | |", "|---|---|---|---|---|"]
    for g in results["goals"]:
        lines.append(f"| {g['goal']} | {g['db']} | {_fmt(g['value'])} | {g['target']} | "
                     f"{'pass' if g['pass'] else 'FAIL'} |")
    if results.get("big") is not None:
        lines += ["", "big rulesets (bench/big_rulesets.py): "
                  f"`{json.dumps(results['big'])[:3000]}`"]
    if results.get("tables") is not None:
        lines += ["", "decision tables (bench/tables.py): "
                  f"`{json.dumps(results['tables'])[:2000]}`"]
    return "\n".join(lines) + "\n"


def write_readme(results: dict[str, Any], markdown: str) -> None:
    """Replaces the "Latest run" table of bench/README.md (between its two markers)."""
    if not README.exists():
        return
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        return
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    stamp = (f"Run of {results['finished_at']} on {results['machine']['platform']} "
             f"({results['machine']['cpus']} CPUs), {results['seconds']:.0f} s in all.\n\n")
    README.write_text(f"{head}{TABLE_START}\n{stamp}{markdown}{TABLE_END}{tail}")


def main() -> int:
    """Runs the whole bench and writes bench/results.json and the README table."""
    started = time.perf_counter()
    kinds = [k.strip() for k in os.environ.get("BENCH_DATABASES", ",".join(DATABASES)).split(",")
             if k.strip()]
    unknown = [k for k in kinds if k not in DATABASES]
    if unknown:
        print(f"bench: unknown database(s) {unknown}; choose from {list(DATABASES)}",
              file=sys.stderr)
        return 2
    rs = bench_inputs.ruleset()
    raws = bench_inputs.raw_inputs(rs, N_INPUTS)
    validated = bench_inputs.validated(rs, raws)
    results: dict[str, Any] = {"machine": {"python": sys.version.split()[0],
                                           "platform": platform.platform(),
                                           "cpus": os.cpu_count(),
                                           "load_average": os.getloadavg()}}
    with stop_on_signals():
        try:
            wrk_path()
            log("engine")
            results["engine"] = engine_bench.run(rs, validated)
            results["service"] = {}
            with tempfile.TemporaryDirectory(prefix="rules-bench-") as tmp_name:
                tmp = Path(tmp_name)
                bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl", raws[:1000])
                for kind in kinds:
                    log(f"service on {kind}")
                    results["service"][kind] = service.run(kind, tmp, rs, raws, validated,
                                                           bodies)
            log("decision tables")
            results["tables"] = tables_figures()
            log("big rulesets beside the small policy")
            results["big"] = big_rulesets.run(kinds)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted; every server it started is stopped", file=sys.stderr)
            return 130
    results["goals"] = goals(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    markdown = table(results)
    write_readme(results, markdown)
    print(markdown)
    for g in results["goals"]:
        print(f"{'PASS' if g['pass'] else 'FAIL'}  {g['db']:10} {g['goal']}: "
              f"{_fmt(g['value'])} (goal {g['target']})")
    wrong = results["engine"]["engine_reference_disagreements"] or any(
        not check["pass"] for fig in results["service"].values()
        for check in (fig["decisions_vs_200"], fig[service.MORE_WORKERS_KEY]["decisions_vs_200"]))
    print(f"written to {RESULTS.relative_to(ROOT)} in {results['seconds']:.0f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
