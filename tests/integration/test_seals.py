"""Seals on a real database: tampering by SQL is named by ``audit verify``, untouched data
verifies, sealing is idempotent and never forks, the worker seals, the route gives the
head, ``audit prove`` prints a path that verifies, and archived months still verify."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from rules_service.adapters import partitions
from rules_service.adapters.decision_log import DecisionRecord, write_decisions
from rules_service.adapters.orm import AuditEventRow, DecisionRow, SealItemRow, SealRow
from rules_service.adapters.seal_store import SealStore
from rules_service.bootstrap import Container
from rules_service.cli import main as cli_main
from rules_service.domain.seals import root_from_path
from rules_service.services import decisions, retention, seals
from tests.conftest import database_kind
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock
from tests.integration.test_hot_path import EVALUATE, activate

HOUR = timedelta(hours=1)


def _record(ruleset_id: int, at: datetime, outcome: str = "approve") -> DecisionRecord:
    return DecisionRecord(
        id=decisions.new_id(), ruleset_id=ruleset_id, version=1, input={"amount": 1.5},
        outcome=outcome, fired_rules=[{"id": "small", "reason": "why"}],
        deciding_rules=["small"], fallback=False, fallback_reason=None, caller="bot",
        idempotency_key=None, request_hash=None, evaluated_at=at, duration_ms=1.25,
        escalation=None)


def _write(container: Container, records: list[DecisionRecord]) -> list[str]:
    with container.engine.begin() as conn:
        write_decisions(conn, records)
    return [r.id for r in records]


def _sql(container: Container, statement: str, **params: object) -> None:
    with container.engine.begin() as conn:
        conn.execute(text(statement), params)


def _count(container: Container, table: object) -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _cli(container: Container, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    monkeypatch.setenv("RULES_SERVICE_DATABASE_URL",
                       container.engine.url.render_as_string(hide_password=False))
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip().splitlines()


@pytest.fixture
def history(api: Api, container: Container, clock: FakeClock) -> dict[str, object]:
    """An active ruleset (its audit events), decisions through the API and older ones
    written directly, all recorded an hour or more ago."""
    clock.now -= 3 * HOUR
    activate(api)
    for amount in (5, 500):
        assert api.post(EVALUATE, {"input": {"amount": amount}}, who="bot").status_code == 200
    with container.engine.connect() as conn:
        rid = int(conn.execute(text("SELECT id FROM rulesets WHERE name = 'refunds'"))
                  .scalar_one())
    written = _write(container, [_record(rid, clock.now - HOUR * n, o)
                                 for n, o in ((1, "approve"), (2, "reject"), (3, "approve"))])
    return {"ruleset_id": rid, "written": written, "at": clock.now}


def _sealed_counts(container: Container) -> tuple[int, int]:
    return _count(container, DecisionRow.__table__), _count(container, AuditEventRow.__table__)


def test_untouched_data_verifies_with_the_exact_last_line(
        history: dict[str, object], container: Container, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _cli(container, monkeypatch, capsys, "audit", "seal")
    assert code == 0 and lines[0].startswith("seal 1: ")
    n_decisions, n_events = _sealed_counts(container)
    assert n_decisions == 5 and n_events >= 3
    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify")
    assert code == 0, lines
    assert lines[-1] == f"{n_decisions} decisions, {n_events} audit events, 1 seals intact"


def test_sealing_is_idempotent(history: dict[str, object], container: Container,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(container, monkeypatch, capsys, "audit", "seal")[0] == 0
    code, lines = _cli(container, monkeypatch, capsys, "audit", "seal")
    assert (code, lines) == (0, ["nothing to seal"])
    assert _count(container, SealRow.__table__) == 1
    assert _count(container, SealItemRow.__table__) == sum(_sealed_counts(container))


def test_items_newer_than_the_commit_lag_wait_for_the_next_seal(
        history: dict[str, object], container: Container) -> None:
    at = history["at"]
    assert isinstance(at, datetime)
    store = container.seal_store()
    [first] = seals.seal(store, at + timedelta(seconds=2))  # the newest are 2 s old
    assert first.items < sum(_sealed_counts(container))
    [second] = seals.seal(store, at + HOUR)
    assert first.items + second.items == sum(_sealed_counts(container))
    assert second.previous_hash == first.hash


def test_tampering_by_sql_is_named_by_verify(
        history: dict[str, object], container: Container, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    at, rid = history["at"], history["ruleset_id"]
    assert isinstance(at, datetime) and isinstance(rid, int)
    store = container.seal_store()
    seals.seal(store, at + HOUR)
    later = _write(container, [_record(rid, at + 2 * HOUR)])
    seals.seal(store, at + 3 * HOUR)
    changed, deleted, _ = history["written"]  # type: ignore[misc]
    _sql(container, "UPDATE decisions SET outcome = 'reject' WHERE id = :id", id=changed)
    _sql(container, "DELETE FROM decisions WHERE id = :id", id=deleted)
    event = int(container.engine.connect().execute(
        text("SELECT min(id) FROM audit_events")).scalar_one())
    _sql(container, "UPDATE audit_events SET actor = 'mallory' WHERE id = :id", id=event)
    [inserted] = _write(container, [_record(rid, at - 5 * HOUR)])   # in seal 1's period
    # Recorded 30 s before seal 2 was made, committed after it: a late commit.
    [late] = _write(container, [_record(rid, at + 3 * HOUR - timedelta(seconds=30))])

    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify")
    assert code == 1
    report = "\n".join(lines)
    assert f"decision {changed}: content changed since seal 1" in report
    assert f"decision {deleted}: missing (sealed in seal 1)" in report
    assert f"audit event {event}: content changed since seal 1" in report
    assert f"decision {inserted}: added to a sealed period" in report
    # A late commit (within a minute of its recorded time) is never reported...
    assert late not in report and later[0] not in report
    assert lines[-1].startswith("4 problems in ")
    # ... and the next seal takes it; the row slipped into seal 1's period stays outside.
    [third] = seals.seal(store, at + 4 * HOUR)
    assert third.items == 1
    assert _cli(container, monkeypatch, capsys, "audit", "verify")[1][-1].startswith(
        "4 problems")


def test_an_altered_seal_or_its_list_of_items_is_named(
        history: dict[str, object], container: Container) -> None:
    at = history["at"]
    assert isinstance(at, datetime)
    store = container.seal_store()
    seals.seal(store, at + HOUR)
    assert seals.verify(store).intact
    _sql(container, "DELETE FROM seal_items WHERE position = 0")
    _sql(container, "UPDATE seals SET items = items - 1")
    problems = seals.verify(store).problems
    assert any("seal 1: its fields do not make its hash" in p for p in problems)
    assert any("does not make its Merkle root" in p for p in problems)


def _sealer(store: SealStore, when: datetime, start: threading.Barrier,
            made: list[int]) -> None:
    start.wait()
    made.extend(s.number for s in seals.seal(store, when))


def test_concurrent_sealers_make_one_chain(history: dict[str, object],
                                           container: Container) -> None:
    at, rid = history["at"], history["ruleset_id"]
    assert isinstance(at, datetime) and isinstance(rid, int)
    store = container.seal_store()
    for round_ in range(3):
        _write(container, [_record(rid, at + round_ * HOUR + timedelta(seconds=s))
                           for s in range(20)])
        start = threading.Barrier(4)
        made: list[int] = []
        when = at + (round_ + 1) * HOUR
        threads = [threading.Thread(target=_sealer, args=(store, when, start, made))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert made == [round_ + 1]
    chain = store.all_seals()
    assert [s.number for s in chain] == [1, 2, 3]
    assert _count(container, SealItemRow.__table__) == sum(_sealed_counts(container))
    assert seals.verify(store).intact


def test_the_worker_seals(history: dict[str, object], container: Container,
                          monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _cli(container, monkeypatch, capsys, "worker", "--once")
    assert code == 0 and "seals written 1" in lines
    assert seals.verify(container.seal_store()).seals == 1


def test_the_latest_seal_is_given_to_any_principal(history: dict[str, object], api: Api,
                                                    container: Container) -> None:
    assert api.get("/v1/seals/latest", who="stranger").status_code == 404
    at = history["at"]
    assert isinstance(at, datetime)
    [made] = seals.seal(container.seal_store(), at + HOUR)
    response = api.get("/v1/seals/latest", who="stranger")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"seal": 1, "hash": made.hash, "items": made.items,
                    "sealed_at": body["sealed_at"]}
    assert datetime.fromisoformat(body["sealed_at"]) == made.sealed_at
    assert api.get("/v1/seals/latest", who=None).status_code == 401


def test_prove_prints_a_path_that_verifies(
        history: dict[str, object], container: Container, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(container, monkeypatch, capsys, "audit", "seal")[0] == 0
    decision = history["written"][1]  # type: ignore[index]
    code, lines = _cli(container, monkeypatch, capsys, "audit", "prove", decision)
    assert code == 0, lines
    proof = json.loads(lines[-1])
    assert proof["item"]["id"] == decision and proof["content_matches"] is True
    assert root_from_path(proof["item"]["hash"], proof["leaf_index"], proof["tree_size"],
                          proof["path"]) == proof["seal"]["root"]
    _sql(container, "UPDATE decisions SET caller = 'mallory' WHERE id = :id", id=decision)
    code, lines = _cli(container, monkeypatch, capsys, "audit", "prove", decision)
    assert code == 1 and "DOES NOT match" in "\n".join(lines)
    code, lines = _cli(container, monkeypatch, capsys, "audit", "prove", "no-such-id")
    assert code == 1 and "not sealed" in lines[0]


def test_verify_checks_a_head_kept_outside(
        history: dict[str, object], container: Container, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    at = history["at"]
    assert isinstance(at, datetime)
    [made] = seals.seal(container.seal_store(), at + HOUR)
    assert _cli(container, monkeypatch, capsys, "audit", "verify", "--head",
                f"1:{made.hash}")[0] == 0
    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify", "--head",
                       f"2:{made.hash}")
    assert code == 1 and "seal 2: differs from the head kept outside (missing)" in lines


def test_verify_names_every_bad_argument(container: Container, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify", "--head", "x",
                       "--archive", str(tmp_path / "nowhere"))
    assert code == 2
    assert any("--head" in line for line in lines) and any("--archive" in line
                                                           for line in lines)


def test_an_archived_month_verifies_against_its_archive(
        api: Api, container: Container, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    activate(api)
    with container.engine.connect() as conn:
        rid = int(conn.execute(text("SELECT id FROM rulesets WHERE name = 'refunds'"))
                  .scalar_one())
    old = partitions.Month.of(clock.now - timedelta(days=500))
    archived = _write(container, [_record(rid, old.start + timedelta(days=d, hours=d))
                                  for d in range(6)])
    _write(container, [_record(rid, clock.now - timedelta(days=1))])
    if database_kind() == "postgresql":
        with container.engine.begin() as conn:
            partitions.ensure_partitions(conn, clock.now, 3)
    store = container.seal_store()
    [made] = seals.seal(store, clock.now)
    retention.apply_retention(container.engine, older_than=timedelta(days=400),
                              archive_dir=tmp_path, now=clock.now)
    [manifest_path] = tmp_path.glob("*.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["seals"] == [{"seal": 1, "hash": made.hash, "root": made.root,
                                  "items": made.items}]

    without = seals.verify(store)
    assert {f"decision {d}: missing (sealed in seal 1)" for d in archived} <= set(
        without.problems)
    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify", "--archive",
                       str(tmp_path))
    assert code == 0, lines
    assert lines[-1].startswith(f"{made.items - without.audit_events} decisions")

    # A changed archive no longer matches its manifest: its decisions are missing again.
    [archive] = tmp_path.glob("*.jsonl.gz")
    with gzip.open(archive, "rt") as stream:
        records = [json.loads(line) for line in stream]
    records[0]["outcome"] = "reject"
    with gzip.open(archive, "wt") as stream:
        stream.writelines(json.dumps(r) + "\n" for r in records)
    report = seals.verify(store, tmp_path)
    assert any("does not match its manifest" in p for p in report.problems)
    assert f"decision {archived[0]}: missing (sealed in seal 1)" in report.problems

    # An archive rewritten with its manifest's sha256 but not gzip JSON Lines is named.
    archive.write_bytes(b"not gzip")
    manifest["sha256"] = hashlib.sha256(b"not gzip").hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    code, lines = _cli(container, monkeypatch, capsys, "audit", "verify", "--archive",
                       str(tmp_path))
    assert code == 1 and any(f"archive {archive.name}: unreadable" in line for line in lines)


def test_a_backlog_larger_than_one_seal_is_sealed_in_order_without_a_gap(
        history: dict[str, object], container: Container,
        monkeypatch: pytest.MonkeyPatch) -> None:
    at, rid = history["at"], history["ruleset_id"]
    assert isinstance(at, datetime) and isinstance(rid, int)
    monkeypatch.setattr(seals, "MAX_ITEMS", 4)
    same_moment = at - 30 * timedelta(minutes=1)
    _write(container, [_record(rid, at - timedelta(minutes=m)) for m in range(1, 12)]
           + [_record(rid, same_moment) for _ in range(6)])   # more than a seal, tied
    store = container.seal_store()
    written = seals.seal(store, at + HOUR)
    assert len(written) > 3
    assert sum(s.items for s in written) == sum(_sealed_counts(container))
    cutoffs = [s.cutoff for s in written]
    assert cutoffs == sorted(cutoffs)
    report = seals.verify(store)
    assert report.intact, report.problems
    # Late commits, more than one seal takes, all below the newest cutoff: none is lost.
    _write(container, [_record(rid, at + 90 * timedelta(minutes=1))])
    [recent] = seals.seal(store, at + 2 * HOUR)
    _write(container, [_record(rid, recent.cutoff - timedelta(seconds=s)) for s in range(1, 7)])
    assert len(seals.seal(store, at + 2 * HOUR + timedelta(seconds=30))) == 1
    assert seals.verify(store).intact
    assert _count(container, SealItemRow.__table__) == sum(_sealed_counts(container))
