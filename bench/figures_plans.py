"""Plans and timings of the operations figures on a 1,000,000-decision table.

Seeds a throwaway database (SQLite file or a new PostgreSQL database) with four rulesets
and N decisions spread over the last 30 days (Core executemany, escalations for the
escalate outcomes, most of them resolved), counts them into the rollups with
``adapters.rollups`` exactly as live writing does, then:

- records every SQL statement that ``GET /v1/dashboard`` (default window and 30 days)
  and ``GET /metrics`` send, and prints each one's plan: ``EXPLAIN ANALYZE`` on
  PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite; it fails if any plan reads ``decisions``;
- times the three requests through the Flask app (median of several runs).

    .venv/bin/python -m bench.figures_plans --database sqlite --decisions 1000000
    .venv/bin/python -m bench.figures_plans --database postgresql
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from sqlalchemy import Connection, Engine, event, insert, text
from sqlalchemy.engine import make_url

from api import create_app
from rules_service.adapters import migrations_runner, rollups
from rules_service.adapters.orm import DecisionRow, EscalationRow, RulesetRow, VersionRow
from rules_service.bootstrap import bootstrap
from rules_service.config import Settings
from rules_service.engine.reference import ReferenceEvaluator
from rules_service.services import principals

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RULESETS = Path(__file__).resolve().parent.parent / "rulesets"
CHUNK = 10_000
OUTCOMES = ("approve",) * 7 + ("reject",) * 1 + ("escalate",) * 2


@contextmanager
def throwaway(kind: str, keep: bool) -> Iterator[str]:
    """The URL of a new, empty database of that kind; dropped afterwards unless kept."""
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="rs-bench-"))
        try:
            yield f"sqlite:///{directory / 'bench.db'}"
        finally:
            if not keep:
                shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"rs_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def add_example_rulesets(conn: Connection, created_at: datetime) -> list[int]:
    """The rulesets of rulesets/, each with version 1 active since ``created_at``; their ids."""
    ids = []
    for path in sorted(RULESETS.glob("*.yaml")):
        content = path.read_text(encoding="utf-8")
        definition = yaml.safe_load(content)
        rid = conn.execute(insert(RulesetRow).values(
            name=definition["name"], title=definition.get("title", ""),
            created_at=created_at).returning(RulesetRow.id)).scalar_one()
        conn.execute(insert(VersionRow).values(
            ruleset_id=rid, number=1, status="active", content=content,
            definition=definition, content_hash=uuid.uuid4().hex, author="bench",
            note="", created_at=created_at, approved_at=created_at, activated_at=created_at))
        ids.append(rid)
    return ids


def seed(engine: Engine, decisions: int, now: datetime) -> dict[str, int]:
    """Rulesets with an active version each, and the decisions, escalations and rollups."""
    rng = random.Random(7)
    counts = {"decisions": 0, "escalations": 0, "open": 0}
    with engine.begin() as conn:
        ids = add_example_rulesets(conn, now - timedelta(days=60))
    span = timedelta(days=30).total_seconds()
    step = span / decisions
    for start in range(0, decisions, CHUNK):
        rows: list[dict[str, Any]] = []
        escalations: list[dict[str, Any]] = []
        resolved: list[rollups.RolledResolution] = []
        for i in range(start, min(start + CHUNK, decisions)):
            at = now - timedelta(seconds=span - i * step)
            outcome = rng.choice(OUTCOMES)
            is_fallback = rng.random() < 0.01
            did = str(uuid.uuid4())
            rid = ids[i % len(ids)]
            rows.append({
                "id": did, "ruleset_id": rid, "version": 1, "input": {"amount": i % 9000},
                "outcome": outcome, "fired_rules": [], "deciding_rules": [],
                "fallback": is_fallback,
                "fallback_reason": "engine timeout" if is_fallback else None,
                "caller": "bench", "idempotency_key": None, "request_hash": None,
                "evaluated_at": at, "duration_ms": round(rng.lognormvariate(-0.5, 1.0), 3)})
            if outcome == "escalate":
                # People resolve almost all of them within hours; the last day's stay open.
                due = at + timedelta(hours=4)
                done = at < now - timedelta(days=1) and rng.random() < 0.995
                resolved_at = at + timedelta(seconds=rng.expovariate(1 / 7200)) if done else None
                escalations.append({
                    "id": str(uuid.uuid4()), "decision_id": did,
                    "decision_evaluated_at": at, "ruleset_id": rid,
                    "version": 1, "to_role": "approver",
                    "status": "resolved" if done else "open", "due_at": due,
                    "created_at": at, "resolved_at": resolved_at,
                    "resolved_by": "bench" if done else None,
                    "resolution": "approve" if done else None, "comment": ""})
                if resolved_at is not None:
                    resolved.append(rollups.RolledResolution(rid, at, resolved_at, due))
                else:
                    counts["open"] += 1
        with engine.begin() as conn:
            conn.execute(insert(DecisionRow), rows)
            if escalations:
                conn.execute(insert(EscalationRow), escalations)
            rollups.add_decisions(conn, [rollups.RolledDecision(
                r["ruleset_id"], 1, r["evaluated_at"], r["outcome"], r["fallback"],
                r["duration_ms"]) for r in rows])
            rollups.add_resolutions(conn, resolved)
        counts["decisions"] += len(rows)
        counts["escalations"] += len(escalations)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql"
                          else "ANALYZE"))
    return counts


def capture(engine: Engine) -> tuple[list[tuple[str, Any]], Any]:
    """Starts recording every statement sent on the engine; returns the list and the hook."""
    seen: list[tuple[str, Any]] = []

    def hook(conn: Connection, cursor: Any, statement: str, parameters: Any,
             context: Any, executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(("EXPLAIN", "BEGIN", "SAVEPOINT")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", hook)
    return seen, hook


def explain(engine: Engine, statement: str, parameters: Any) -> tuple[str, float]:
    """The plan of one recorded statement, run with its own parameters, and its median
    time in milliseconds over five runs."""
    pg = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " if pg else "EXPLAIN QUERY PLAN "
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(prefix + statement, parameters)
        rows = cursor.fetchall()
        samples = []
        for _ in range(5):
            began = time.perf_counter()
            cursor.execute(statement, parameters)
            cursor.fetchall()
            samples.append((time.perf_counter() - began) * 1000)
    finally:
        raw.close()
    if pg:
        plan = "\n".join(r[0] for r in rows)
    else:
        plan = "\n".join(f"{'  ' * (0 if r[1] == 0 else 1)}{r[-1]}" for r in rows)
    return plan, statistics.median(samples)


def timed(client: Any, path: str, token: str, runs: int) -> float:
    """Median milliseconds of a GET, after one warm-up."""
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(path, headers=headers).status_code == 200
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    """Seeds, explains, times; prints Markdown (plans) and a JSON line (timings)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    with throwaway(args.database, args.keep) as url:
        migrations_runner.upgrade(url)
        container = bootstrap(Settings(database_url=url), evaluator=ReferenceEvaluator())
        began = time.perf_counter()
        counts = seed(container.engine, args.decisions, now)
        seeded_s = time.perf_counter() - began
        token = principals.add_principal(container.uow(), "bench-reader",
                                         is_automation=True).token
        client = create_app(container=container).test_client()
        paths = {"dashboard (default window, 7 days)": "/v1/dashboard",
                 "dashboard (30 days)": "/v1/dashboard?since=30d",
                 "metrics": "/metrics"}
        plans: dict[str, list[tuple[str, str, float]]] = {}
        reads_decisions = False
        for label, path in paths.items():
            seen, hook = capture(container.engine)
            client.get(path, headers={"Authorization": f"Bearer {token}"})
            event.remove(container.engine, "before_cursor_execute", hook)
            plans[label] = []
            for statement, parameters in seen:
                if not statement.lstrip().upper().startswith("SELECT"):
                    continue
                plan, ms = explain(container.engine, statement, parameters)
                plans[label].append((statement, plan, ms))
                lowered = plan.lower()
                if "on decisions " in lowered or "scan decisions" in lowered or \
                        "decisions using" in lowered:
                    reads_decisions = True
        timings = {label: round(timed(client, path, token, args.runs), 2)
                   for label, path in paths.items()}
        container.close()
    print(f"# {args.database}: {counts['decisions']:,} decisions, "
          f"{counts['escalations']:,} escalations ({counts['open']:,} open), "
          f"seeded in {seeded_s:.0f} s\n")
    for label, items in plans.items():
        print(f"## {label}\n")
        for statement, plan, ms in items:
            print(f"{ms:.2f} ms\n```sql\n" + " ".join(statement.split()) + "\n```\n```\n"
                  + plan + "\n```\n")
    print("timings_ms " + json.dumps({"database": args.database, **timings}))
    if reads_decisions:
        print("A PLAN READS THE DECISIONS TABLE", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
