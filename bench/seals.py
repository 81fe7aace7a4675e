"""Seals: what sealing costs evaluate, and how fast decisions are sealed and verified.

1. Evaluate is warmed up, then ``--decisions`` decisions are seeded (``bench.seed``) and
   sealed from scratch (``services.seals.seal``: items/s), and everything is verified
   (``services.seals.verify``: items/s).
2. Evaluate under wrk (the same server, ruleset, bodies and wrk settings as
   ``bench.service``) in rounds that alternate between no sealer and a sealer running
   beside the server every second (thirty times as often as the worker does), writing
   seals into the same database. Sealing is off the evaluate path, so the two should
   differ by noise only.

    .venv/bin/python -m bench.seals --database postgresql --decisions 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import inputs as bench_inputs
from bench.common import RULESET_NAME
from bench.databases import throwaway
from bench.load import run_wrk
from bench.seed import seed
from bench.servers import gunicorn
from rules_service.adapters.database import make_engine
from rules_service.adapters.seal_store import SealStore
from rules_service.services import seals


def _sealer(store: SealStore, stop: threading.Event, written: list[int]) -> None:
    while not stop.wait(1.0):
        written.extend(s.items for s in seals.seal(store, datetime.now(UTC)))


def _evaluate_rounds(args: argparse.Namespace, url: str, store: SealStore, bodies: Path,
                     token: str) -> dict[str, Any]:
    """Alternating rounds without and with a sealer; req/s and latency of each."""
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    sealed: list[int] = []
    for _ in range(args.rounds):
        for mode in ("without", "with"):
            stop = threading.Event()
            thread = threading.Thread(target=_sealer, args=(store, stop, sealed))
            if mode == "with":
                thread.start()
            try:
                runs[mode].append(run_wrk(url, bodies=bodies, token=token,
                                          connections=args.connections,
                                          seconds=args.seconds))
            finally:
                stop.set()
                if mode == "with":
                    thread.join()
    out: dict[str, Any] = {"items_sealed_during_load": sum(sealed)}
    for mode, rounds in runs.items():
        out[mode] = {"req_per_s": statistics.median(r["req_per_s"] for r in rounds),
                     "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rounds),
                     "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rounds),
                     "non_2xx": sum(r["non_2xx"] for r in rounds)}
    out["with_vs_without"] = round(out["with"]["req_per_s"] / out["without"]["req_per_s"], 3)
    return out


def _seal_rate(url: str, decisions: int) -> dict[str, Any]:
    """Seeds, then seals everything waiting and verifies it, timed."""
    seeded = seed(url, decisions, datetime.now(UTC) - timedelta(minutes=5))
    engine = make_engine(url)
    try:
        store = SealStore(engine)
        started = time.perf_counter()
        written = seals.seal(store, datetime.now(UTC))
        seal_s = time.perf_counter() - started
        items = sum(s.items for s in written)
        started = time.perf_counter()
        report = seals.verify(store)
        verify_s = time.perf_counter() - started
        seals.seal(store, datetime.now(UTC))  # the warm-up's newest decisions
    finally:
        engine.dispose()
    if not report.intact:
        raise SystemExit(f"verify found problems: {report.problems[:5]}")
    checked = report.decisions + report.audit_events
    return {"seeded": seeded["decisions"], "seals": len(written), "items": items,
            "seal_s": round(seal_s, 2), "seal_items_per_s": round(items / seal_s),
            "verify_s": round(verify_s, 2), "verify_items_per_s": round(checked / verify_s)}


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--decisions", type=int, default=100_000)
    args = parser.parse_args(argv)
    rs = bench_inputs.ruleset()
    with tempfile.TemporaryDirectory(prefix="rules-seals-") as name:
        tmp = Path(name)
        bodies = bench_inputs.write_bodies(tmp / "bodies.jsonl",
                                           bench_inputs.raw_inputs(rs, 1000))
        with throwaway(args.database, tmp) as db:
            engine = make_engine(db.url)
            try:
                with gunicorn("service", "api:create_app()", env=db.env,
                              ready_path="/healthz", log_dir=tmp) as svc:
                    url = svc.base + f"/v1/rulesets/{RULESET_NAME}/evaluate"
                    token = db.tokens["demo-automation"]
                    run_wrk(url, bodies=bodies, token=token, connections=args.connections,
                            seconds=3)
                    # Seeded before the first seal: older decisions seeded after it would
                    # be (rightly) reported as added to a sealed period.
                    rate = _seal_rate(db.url, args.decisions)
                    evaluate = _evaluate_rounds(args, url, SealStore(engine), bodies, token)
            finally:
                engine.dispose()
    print(json.dumps({"database": args.database, "connections": args.connections,
                      "evaluate": evaluate, "sealing": rate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
