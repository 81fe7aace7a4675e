"""A decision log that grows for years: migration 0007 on a populated database, the
partitions' maintenance (PostgreSQL), retention with its archive (both databases), cursor
listing across partition boundaries, and idempotency across them."""

from __future__ import annotations

import gzip
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, func, insert, select, text

from rules_service.adapters import migrations_runner, partitions, rollup_fold
from rules_service.adapters.database import make_engine
from rules_service.adapters.decision_log import DecisionRecord, EscalationRecord, write_decisions
from rules_service.adapters.orm import (
    DecisionKeyRow,
    DecisionRow,
    EscalationRow,
    EscalationStepRow,
)
from rules_service.bootstrap import Container
from rules_service.cli import main as cli_main
from rules_service.services import decisions, retention
from tests.conftest import database_kind, throwaway_database
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock
from tests.integration.test_hot_path import EVALUATE, activate

DAY = timedelta(days=1)


def _record(ruleset_id: int, at: datetime, *, outcome: str = "approve",
            key: str | None = None, caller: str = "bot", decision_id: str | None = None,
            escalate_to: str = "approver") -> DecisionRecord:
    escalation = (EscalationRecord(decisions.new_id(), escalate_to, at + timedelta(hours=4))
                  if outcome == "escalate" else None)
    return DecisionRecord(
        id=decision_id or decisions.new_id(), ruleset_id=ruleset_id, version=1,
        input={"amount": 1}, outcome=outcome, fired_rules=[{"id": "r", "reason": "why"}],
        deciding_rules=["r"], fallback=False, fallback_reason=None, caller=caller,
        idempotency_key=key, request_hash="h" if key else None, evaluated_at=at,
        duration_ms=1.5, escalation=escalation)


def _ruleset_id(api: Api, container: Container) -> int:
    activate(api)
    with container.engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM rulesets WHERE name = 'refunds'"))
                   .scalar_one())


def _write(container: Container, records: list[DecisionRecord]) -> set[str]:
    with container.engine.begin() as conn:
        written = write_decisions(conn, records)
    rollup_fold.fold_pending(container.engine)  # counted, as the background fold does
    return written


def _count(container: Container, table: Any, *where: Any) -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())


# --------------------------------------------------------------------------- migration


def _old_rows(now: datetime, naive: bool) -> dict[str, list[dict[str, Any]]]:
    """Rows in the 0006 shape: decisions over 14 months (keyed and not), escalations, and
    steps of one of them."""
    def at(value: datetime) -> datetime:
        return value.replace(tzinfo=None) if naive else value

    rows: dict[str, list[dict[str, Any]]] = {"decisions": [], "escalations": [],
                                             "escalation_steps": []}
    for i in range(40):
        when = now - timedelta(days=11 * i, minutes=i)
        did = f"00000000-0000-7000-8000-{i:012d}"
        outcome = ("approve", "reject", "escalate")[i % 3]
        rows["decisions"].append({
            "id": did, "ruleset_id": 1, "version": 1, "input": {"amount": i},
            "outcome": outcome, "fired_rules": [{"id": "r", "reason": f"r{i}"}],
            "deciding_rules": ["r"], "fallback": i % 7 == 0,
            "fallback_reason": "timeout" if i % 7 == 0 else None, "caller": "bot",
            "idempotency_key": f"key-{i}" if i % 2 else None,
            "request_hash": "h" if i % 2 else None, "evaluated_at": at(when),
            "duration_ms": 0.5 + i})
        if outcome == "escalate":
            eid = f"e0000000-0000-7000-8000-{i:012d}"
            rows["escalations"].append({
                "id": eid, "decision_id": did, "ruleset_id": 1, "version": 1,
                "to_role": "approver", "status": "open" if i % 2 else "resolved",
                "due_at": at(when + timedelta(hours=4)), "created_at": at(when),
                "resolved_at": None if i % 2 else at(when + DAY),
                "resolved_by": None if i % 2 else "appr",
                "resolution": None if i % 2 else "approve", "comment": "",
                "breached_at": at(when + timedelta(hours=5)), "steps_taken": 1,
                "next_step_at": None})
            rows["escalation_steps"].append({"id": i + 1, "escalation_id": eid, "step": 1,
                                             "principal": "appr",
                                             "at": at(when + timedelta(hours=5))})
    return rows


def _snapshot(url: str) -> dict[str, set[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            def rows(sql: str) -> set[tuple[Any, ...]]:
                return {tuple(str(v) for v in r) for r in conn.execute(text(sql))}
            return {
                "decisions": rows("SELECT id, outcome, caller, idempotency_key, "
                                  "fallback_reason, duration_ms, input, fired_rules "
                                  "FROM decisions"),
                "escalations": rows("SELECT id, decision_id, status, resolved_by "
                                    "FROM escalations"),
                "steps": rows("SELECT id, escalation_id, step FROM escalation_steps"),
                "keys": rows("SELECT caller, idempotency_key, id FROM decisions "
                             "WHERE idempotency_key IS NOT NULL"),
            }
    finally:
        engine.dispose()


def test_migration_0007_up_and_down_keeps_every_row(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with throwaway_database(tmp_path) as url:
        migrations_runner.upgrade(url, "0006")
        engine = make_engine(url)
        try:
            meta = MetaData()
            meta.reflect(engine)
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO rulesets (id, name, title, created_at) "
                                  "VALUES (1, 'refunds', '', :at)"),
                             {"at": now.replace(tzinfo=None) if database_kind() == "sqlite"
                              else now})
                for table, rows in _old_rows(now, database_kind() == "sqlite").items():
                    conn.execute(insert(Table(table, meta)), rows)
        finally:
            engine.dispose()
        before = _snapshot(url)
        assert len(before["decisions"]) == 40 and len(before["steps"]) == 13

        migrations_runner.upgrade(url)
        assert _snapshot(url) == before
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                keys = {(r.caller, r.idempotency_key, r.decision_id) for r in conn.execute(
                    select(DecisionKeyRow.caller, DecisionKeyRow.idempotency_key,
                           DecisionKeyRow.decision_id))}
                assert keys == {tuple(k) for k in before["keys"]}
                if database_kind() == "postgresql":
                    # Every row sits in the partition of its month (none in the default).
                    placed = conn.execute(text(
                        "SELECT tableoid::regclass::text AS part, evaluated_at "
                        "FROM decisions")).all()
                    assert {p for p, _ in placed if p.endswith("default")} == set()
                    assert all(p == partitions.Month.of(at).partition("decisions")
                               for p, at in placed)
        finally:
            engine.dispose()

        command.downgrade(migrations_runner.alembic_config(url), "0006")
        assert _snapshot(url) == before
        migrations_runner.upgrade(url)
        assert _snapshot(url) == before


# --------------------------------------------------------------------------- maintenance


@pytest.mark.postgres_only
def test_an_insert_beyond_the_partitions_lands_in_default_and_maintenance_moves_it(
        api: Api, container: Container, clock: FakeClock,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rid = _ruleset_id(api, container)
    far = partitions.Month.of(clock.now)
    for _ in range(9):
        far = far.next()
    at = far.start + timedelta(days=3)
    record = _record(rid, at, outcome="escalate", key="far-key")
    assert _write(container, [record]) == {record.id}
    with container.engine.begin() as conn:
        conn.execute(insert(EscalationStepRow).values(
            escalation_id=record.escalation.id if record.escalation else "",
            decision_evaluated_at=at, step=1, principal="appr", at=at))
        where = conn.execute(text("SELECT tableoid::regclass::text FROM decisions "
                                  "WHERE id = :id"), {"id": record.id}).scalar_one()
    assert where == "decisions_default"

    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", str(container.engine.url.render_as_string(
        hide_password=False)))
    assert cli_main(["db", "partitions", "--ahead", "3"]) == 0
    out = capsys.readouterr().out
    assert "found in the default partitions: 1 decisions, 1 escalations" in out
    assert f"moved them into their months: {far.label}" in out

    with container.engine.connect() as conn:
        where = conn.execute(text("SELECT tableoid::regclass::text FROM decisions "
                                  "WHERE id = :id"), {"id": record.id}).scalar_one()
        assert where == far.partition("decisions")
        esc_where = conn.execute(text("SELECT tableoid::regclass::text FROM escalations "
                                      "WHERE decision_id = :id"), {"id": record.id}
                                 ).scalar_one()
        assert esc_where == far.partition("escalations")
        assert conn.execute(select(func.count()).select_from(EscalationStepRow)).scalar() == 1
    # The key still finds its decision, the steps their escalation; a second run finds
    # nothing to do.
    assert decisions.find_replay(container.uow(), "bot", "far-key", "h") is not None
    assert cli_main(["db", "partitions", "--ahead", "3"]) == 0
    out = capsys.readouterr().out
    assert "partitions created: none" in out and "0 decisions, 0 escalations" in out


# --------------------------------------------------------------------------- retention


def _dashboard(api: Api, since: datetime, until: datetime) -> dict[str, Any]:
    def stamp(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    response = api.get(f"/v1/dashboard?since={stamp(since)}&until={stamp(until)}")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_retention_archives_then_removes_whole_months_and_keeps_open_escalations(
        api: Api, container: Container, clock: FakeClock, tmp_path: Path) -> None:
    rid = _ruleset_id(api, container)
    now = clock.now
    old = partitions.Month.of(now - 520 * DAY)      # archived and removed
    blocked = partitions.Month.of(now - 450 * DAY)  # holds an open escalation: kept
    old_records = [_record(rid, old.start + timedelta(days=d, hours=h),
                           outcome=("approve", "reject", "escalate")[(d + h) % 3],
                           key=f"old-{d}-{h}" if h % 2 else None)
                   for d in range(0, 27, 3) for h in (0, 5, 11)]
    blocked_records = [_record(rid, blocked.start + timedelta(days=d), outcome=o)
                       for d, o in ((1, "approve"), (2, "escalate"), (4, "escalate"))]
    recent = [_record(rid, now - timedelta(days=d), outcome="escalate") for d in (1, 2)]
    _write(container, old_records + blocked_records + recent)
    # Everything in the old month is resolved; one escalation of the blocked month is not.
    for record in old_records + blocked_records[:2]:
        if record.escalation:
            decisions.resolve_escalation(container.uow(), record.escalation.id,
                                         resolution="approve", actor="root")
    if database_kind() == "postgresql":
        with container.engine.begin() as conn:
            partitions.ensure_partitions(conn, now, 3)

    window = (old.start - DAY, blocked.end + DAY)
    figures_before = _dashboard(api, *window)
    assert figures_before["overall"]["decisions"]["count"] == len(old_records) + 3

    dry = retention.apply_retention(container.engine, older_than=400 * DAY,
                                    archive_dir=tmp_path, now=now, dry_run=True)
    assert [m.action for m in dry.months if m.month == old.label] == \
        ["would be archived and removed"]
    assert list(tmp_path.iterdir()) == []

    report = retention.apply_retention(container.engine, older_than=400 * DAY,
                                       archive_dir=tmp_path, now=now)
    by_month = {m.month: m for m in report.months}
    assert by_month[old.label].action.startswith("archived")
    assert by_month[blocked.label].action == "kept"
    assert by_month[blocked.label].open_escalations == 1

    # The archive reads back to exactly the removed decisions, with their escalations.
    [archive] = tmp_path.glob(f"decisions-{old.label}-*.jsonl.gz")
    [manifest_path] = tmp_path.glob(f"decisions-{old.label}-*.manifest.json")
    with gzip.open(archive, "rt") as stream:
        lines = [json.loads(line) for line in stream]
    assert {line["decision_id"] for line in lines} == {r.id for r in old_records}
    assert len(lines) == len(old_records)
    assert [line["evaluated_at"] for line in lines] == sorted(
        line["evaluated_at"] for line in lines)
    escalated = {line["decision_id"]: line["escalation"] for line in lines
                 if line["escalation"]}
    assert set(escalated) == {r.id for r in old_records if r.escalation}
    assert all(e["status"] == "resolved" for e in escalated.values())
    assert lines[0]["fired_rules"] == [{"id": "r", "reason": "why"}]
    manifest = json.loads(manifest_path.read_text())
    assert manifest["decisions"] == len(old_records)
    assert manifest["escalations"] == len(escalated)
    assert manifest["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert manifest["period"] == old.label
    # The archive holds decision inputs: only its owner may read it (was 0644).
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in (archive, manifest_path)} == {"0o600"}

    # The month is gone, with its keys; the blocked month and the recent ones are whole.
    assert _count(container, DecisionRow, DecisionRow.evaluated_at < old.end) == 0
    assert _count(container, DecisionKeyRow, DecisionKeyRow.evaluated_at < old.end) == 0
    assert _count(container, EscalationRow,
                  EscalationRow.decision_evaluated_at < old.end) == 0
    assert _count(container, DecisionRow, DecisionRow.evaluated_at >= blocked.start) == 5
    assert _count(container, EscalationRow, EscalationRow.status == "open") == 3
    if database_kind() == "postgresql":
        with container.engine.connect() as conn:
            months = partitions.existing_months(conn)
        assert old not in months and blocked in months

    # The rollups kept the figures of the removed month: the dashboard shows the same.
    assert _dashboard(api, *window) == figures_before

    # Nothing more to do for that month; the blocked one goes once resolved.
    decisions.resolve_escalation(container.uow(), blocked_records[2].escalation.id
                                 if blocked_records[2].escalation else "",
                                 resolution="reject", actor="root")
    again = retention.apply_retention(container.engine, older_than=400 * DAY,
                                      archive_dir=tmp_path, now=now)
    assert [m.month for m in again.months if m.action.startswith("archived")] \
        == [blocked.label]
    assert _count(container, DecisionRow, DecisionRow.evaluated_at < blocked.end) == 0


def test_a_corrupt_archive_stops_retention_before_anything_is_removed(
        api: Api, container: Container, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rid = _ruleset_id(api, container)
    month = partitions.Month.of(clock.now - 500 * DAY)
    _write(container, [_record(rid, month.start + timedelta(days=d)) for d in range(5)])
    if database_kind() == "postgresql":
        with container.engine.begin() as conn:
            partitions.ensure_partitions(conn, clock.now, 3)

    def short(path: Path, expected: int) -> list[str]:
        raise retention.RetentionError(f"{path} holds {expected - 1} decisions")

    monkeypatch.setattr(retention, "verify_archive", short)
    with pytest.raises(retention.RetentionError):
        retention.apply_retention(container.engine, older_than=400 * DAY,
                                  archive_dir=tmp_path, now=clock.now)
    assert _count(container, DecisionRow, DecisionRow.evaluated_at < month.end) == 5


def test_retention_command_names_every_problem(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("RULES_SERVICE_RETENTION_DAYS", raising=False)
    assert cli_main(["db", "retention"]) == 1
    err = capsys.readouterr().err
    assert "--older-than" in err and "--archive" in err
    assert cli_main(["db", "retention", "--older-than", "2h", "--archive",
                     str(tmp_path)]) == 1
    assert "at least one day" in capsys.readouterr().err


# --------------------------------------------------------------------------- listing


def test_the_cursor_walks_across_partition_boundaries_every_decision_once_in_order(
        api: Api, container: Container, clock: FakeClock) -> None:
    rid = _ruleset_id(api, container)
    this = partitions.Month.of(clock.now)
    boundaries = [this.start, this.previous().start, this.previous().previous().start]
    records = []
    for edge in boundaries:
        # Ties on the boundary itself (ordered by id), and rows on either side of it.
        records += [_record(rid, edge) for _ in range(4)]
        records += [_record(rid, edge - timedelta(microseconds=m)) for m in (1, 2, 900)]
        records += [_record(rid, edge + timedelta(seconds=s), outcome="reject")
                    for s in (1, 7)]
    _write(container, records)
    if database_kind() == "postgresql":
        with container.engine.begin() as conn:
            partitions.ensure_partitions(conn, clock.now, 3)
    expected = [r.id for r in sorted(records, key=lambda r: (r.evaluated_at, r.id),
                                     reverse=True)]
    for limit in (1, 3, 7):
        seen, cursor = [], None
        while True:
            page, cursor = decisions.list_decisions(container.uow(), limit=limit,
                                                    cursor=cursor)
            seen += [d.decision_id for d in page]
            if cursor is None:
                break
        assert seen == expected, limit
    rejects, cursor = [], None
    while True:
        page, cursor = decisions.list_decisions(container.uow(), limit=2, outcome="reject",
                                                ruleset="refunds", cursor=cursor)
        rejects += [d.decision_id for d in page]
        if cursor is None:
            break
    assert rejects == [i for i in expected if i in {r.id for r in records
                                                    if r.outcome == "reject"}]


# --------------------------------------------------------------------------- idempotency


def test_an_idempotency_key_holds_across_a_month_boundary(api: Api, container: Container,
                                                          clock: FakeClock) -> None:
    activate(api)
    edge = partitions.Month.of(clock.now).next().start
    clock.now = edge - timedelta(seconds=1)
    first = api.post(EVALUATE, {"input": {"amount": 5}}, who="bot",
                     headers={"Idempotency-Key": "across"})
    clock.now = edge + timedelta(seconds=1)  # the retry falls in the next partition
    again = api.post(EVALUATE, {"input": {"amount": 5}}, who="bot",
                     headers={"Idempotency-Key": "across"})
    other = api.post(EVALUATE, {"input": {"amount": 6}}, who="bot",
                     headers={"Idempotency-Key": "across"})
    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 409)
    assert again.get_json()["decision_id"] == first.get_json()["decision_id"]
    assert _count(container, DecisionRow, DecisionRow.idempotency_key == "across") == 1
    assert _count(container, DecisionKeyRow) == 1
    # Written directly, a repeated key is skipped whichever month the retry falls in.
    rid = _ruleset_id_of(container)
    later = _record(rid, edge + 40 * DAY, key="across", caller="bot")
    assert _write(container, [later]) == set()
    assert _count(container, DecisionRow) == 1


def _ruleset_id_of(container: Container) -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM rulesets WHERE name = 'refunds'"))
                   .scalar_one())
