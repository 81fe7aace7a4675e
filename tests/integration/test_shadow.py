"""Shadow mode end to end on a real database: the routes and their authority, the runner's
counts against a recount from the decision log, the end of a shadow, the evaluate path
left alone, a runner dying mid-way, late commits and shedding."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from rules_service.adapters.orm import DecisionRow, OutboxEventRow, ShadowResultRow
from rules_service.bootstrap import Container
from rules_service.domain.errors import InputInvalid
from rules_service.domain.inputs import validate_input
from rules_service.domain.shadow import in_sample
from rules_service.engine.reference import ReferenceEvaluator
from rules_service.services.governance import ruleset_of
from rules_service.services.shadow_runner import ShadowRunner, ShadowSettings
from tests.e2e.support import cli_command, server_env
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"
SHADOW = f"{BASE}/versions/2/shadow"
AMOUNTS = [0, 50, 99, 100, 101, 150, 199, 200, 201, 250, 300, 120, 180, 75, 160]


def put(api: Api, path: str, body: Any, who: str = "root") -> Any:
    with api.client.put(path, json=body, headers=api.headers(who)) as response:
        response.get_data()
        return response


def delete(api: Api, path: str, who: str = "root") -> Any:
    with api.client.delete(path, headers=api.headers(who)) as response:
        response.get_data()
        return response


def active_v1_pending_v2(api: Api, **v2: Any) -> None:
    assert api.post(f"{BASE}/versions", {"definition": definition(100)}).status_code == 201
    for who in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"},
                        who=who).status_code == 201
    response = api.post(f"{BASE}/versions", {"definition": definition(200, **v2)}, who="dev")
    assert response.status_code == 201, response.get_json()


def evaluate(api: Api, amounts: list[Any]) -> list[dict[str, Any]]:
    out = []
    for amount in amounts:
        response = api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}, who="bot")
        assert response.status_code == 200, response.get_json()
        out.append(response.get_json())
    return out


def runner(container: Container, **settings: Any) -> ShadowRunner:
    return ShadowRunner(container.uow, lambda: container.evaluator,
                        ShadowSettings(**{"commit_margin_s": 0.0, **settings}))


def recount(container: Container, sample: float, number: int = 2) -> dict[str, Any]:
    """The counts recomputed from the decision log with the reference evaluator."""
    uow = container.uow()
    with uow.readonly():
        rs = uow.rulesets.get(NAME)
        assert rs is not None
        version = uow.versions.get(rs.id, number)
        assert version is not None
        shadow = uow.shadows.latest(rs.id, number)
        assert shadow is not None
        stmt = select(DecisionRow.id, DecisionRow.input, DecisionRow.outcome).where(
            DecisionRow.ruleset_id == rs.id, DecisionRow.evaluated_at >= shadow.since)
        if shadow.ended_at is not None:
            stmt = stmt.where(DecisionRow.evaluated_at < shadow.ended_at)
        rows = list(uow.session.execute(stmt))
    ruleset, reference = ruleset_of(version), ReferenceEvaluator()
    changes: Counter[str] = Counter()
    decided = rejected = 0
    for decision_id, data, outcome in rows:
        if not in_sample(decision_id, sample):
            continue
        decided += 1
        try:
            shadow_outcome = reference.evaluate(ruleset, validate_input(ruleset, data)).outcome
        except InputInvalid:
            rejected += 1
            continue
        if shadow_outcome.value != outcome:
            changes[f"{outcome}->{shadow_outcome.value}"] += 1
    return {"decisions": decided, "disagreements": sum(changes.values()),
            "by_change": dict(changes), "input_rejected": rejected}


def figures(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("decisions", "disagreements", "by_change", "input_rejected")}


def result_rows(container: Container) -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ShadowResultRow)).scalar_one())


# --------------------------------------------------------------------------- the routes


def test_the_routes_answer_with_their_statuses_and_authority(api: Api) -> None:
    active_v1_pending_v2(api)
    assert api.get(SHADOW).status_code == 404
    assert error_of(api.get(SHADOW))["code"] == "not_found"
    assert put(api, SHADOW, {"sample": 1}, who="stranger").status_code == 403
    assert put(api, SHADOW, {"sample": 1}, who="bot").status_code == 403
    assert put(api, f"{BASE}/versions/1/shadow", {"sample": 1}).status_code == 409
    assert put(api, f"{BASE}/versions/7/shadow", {"sample": 1}).status_code == 404
    bad = put(api, SHADOW, {"sample": 0, "alert_above": 2, "extra": 1})
    assert bad.status_code == 422
    assert {d["place"] for d in error_of(bad)["details"]} >= {"sample", "alert_above", "extra"}
    assert put(api, SHADOW, {"sample": "0.5"}).status_code == 422
    assert put(api, SHADOW, {"sample": 0.5, "alert_above": 0.2}, who="dev").status_code == 403
    with api.client.put(SHADOW, json={"sample": 1}) as anonymous:
        assert anonymous.status_code == 401

    started = put(api, SHADOW, {"sample": 0.5}, who="dev")
    assert started.status_code == 200, started.get_json()
    body = started.get_json()
    assert (body["version"], body["sample"], body["decisions"], body["disagreements"],
            body["by_change"], body["examples"], body["running"]) == (
        2, 0.5, 0, 0, {}, [], True)
    assert body["since"]
    read = api.get(SHADOW, who="bot")
    assert read.status_code == 200 and read.get_json()["version"] == 2
    assert delete(api, SHADOW, who="stranger").status_code == 403
    assert delete(api, SHADOW, who="ops").status_code == 204
    assert delete(api, SHADOW, who="ops").status_code == 404
    ended = api.get(SHADOW).get_json()
    assert (ended["running"], ended["end_reason"], ended["ended_by"]) == (False, "stopped", "ops")


# --------------------------------------------------------------------------- the counts


@pytest.mark.parametrize("sample", [1.0, 0.5])
def test_the_counts_equal_a_recount_from_the_decision_log(
        api: Api, container: Container, clock: FakeClock, sample: float) -> None:
    active_v1_pending_v2(api)
    evaluate(api, [10, 150])  # before the shadow: not counted
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": sample}).status_code == 200
    evaluate(api, AMOUNTS * 3)
    done = runner(container, batch=7).catch_up()
    assert done.decided > 0 and done.shed == 0
    body = api.get(SHADOW).get_json()
    expected = recount(container, sample)
    assert figures(body) == {**expected, "by_change": body["by_change"]}
    assert body["by_change"] == expected["by_change"]
    assert expected["by_change"] == {} or set(expected["by_change"]) == {"escalate->approve"}
    assert body["not_shadowed"] == 0
    assert 0 < len(body["examples"]) <= 5
    for example in body["examples"]:
        decision = api.get(f"/v1/decisions/{example['decision_id']}").get_json()
        assert decision["outcome"] == example["active_outcome"] == "escalate"
        assert example["shadow_outcome"] == "approve"
    # A second pass finds nothing new: the counts do not move.
    assert runner(container).catch_up().decided == 0
    assert figures(api.get(SHADOW).get_json()) == figures(body)


def test_inputs_the_shadowed_version_refuses_are_counted_apart(
        api: Api, container: Container, clock: FakeClock) -> None:
    inputs = {"amount": {"type": "number", "required": True, "minimum": 0, "maximum": 200}}
    active_v1_pending_v2(api, inputs=inputs)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    evaluate(api, AMOUNTS)
    runner(container).catch_up()
    body = api.get(SHADOW).get_json()
    assert body["input_rejected"] == sum(1 for a in AMOUNTS if a > 200) > 0
    assert figures(body) == recount(container, 1.0)


@pytest.mark.parametrize("end", ["activated", "rejected", "withdrawn"])
def test_activation_rejection_and_withdrawal_end_the_shadow(
        api: Api, container: Container, clock: FakeClock, end: str) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    evaluate(api, AMOUNTS)
    clock.advance(timedelta(seconds=1))
    if end == "withdrawn":
        assert api.post(f"{BASE}/versions/2/withdraw", {}, who="dev").status_code == 200
    else:
        decision = "reject" if end == "rejected" else "approve"
        for who in ("biz", "appr")[: 1 if end == "rejected" else 2]:
            assert api.post(f"{BASE}/versions/2/signoffs", {"decision": decision},
                            who=who).status_code == 201
    clock.advance(timedelta(seconds=1))
    evaluate(api, AMOUNTS)  # after the end: not the shadow's
    runner(container).catch_up()
    body = api.get(SHADOW).get_json()
    assert (body["running"], body["end_reason"]) == (False, end)
    assert body["decisions"] == len(AMOUNTS)
    assert figures(body) == recount(container, 1.0)
    assert put(api, SHADOW, {"sample": 1}).status_code == 409


def test_evaluate_answers_and_records_the_same_with_a_version_in_shadow(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    without = evaluate(api, AMOUNTS)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    with_shadow = evaluate(api, AMOUNTS)
    keep = ("outcome", "version", "fired_rules", "deciding_rules", "fallback")
    assert [{k: d[k] for k in keep} for d in with_shadow] == \
        [{k: d[k] for k in keep} for d in without]
    assert result_rows(container) == 0  # the evaluate path did no shadow work
    recorded_before = [api.get(f"/v1/decisions/{d['decision_id']}").get_json()
                       for d in with_shadow]
    runner(container).catch_up()
    assert result_rows(container) == len(AMOUNTS)
    assert [api.get(f"/v1/decisions/{d['decision_id']}").get_json()
            for d in with_shadow] == recorded_before


# --------------------------------------------------------------------------- durability


class Dying:
    """An evaluator that dies (as a killed process would stop) after ``batches`` batches."""

    def __init__(self, inner: Any, batches: int) -> None:
        self.inner, self.left = inner, batches

    def evaluate(self, ruleset: Any, data: Any) -> Any:
        return self.inner.evaluate(ruleset, data)

    def evaluate_many(self, ruleset: Any, inputs: Any) -> Any:
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        return self.inner.evaluate_many(ruleset, inputs)


def test_a_runner_killed_mid_way_then_resumed_counts_exactly(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 0.7}).status_code == 200
    evaluate(api, AMOUNTS * 2)
    killed = Dying(container.evaluator, 2)
    dying = ShadowRunner(container.uow, lambda: killed,
                         ShadowSettings(batch=4, commit_margin_s=0.0))
    with pytest.raises(KeyboardInterrupt):
        dying.catch_up()
    partial = result_rows(container)
    assert 0 < partial < recount(container, 0.7)["decisions"]
    # A racing runner reads the same work as the resumed one: each decision counts once.
    racer = runner(container, batch=4)
    racing = racer._read(api.get(SHADOW).get_json() and 1)
    assert racing is not None
    runner(container, batch=3).catch_up()
    racer._store(racing, racer._decide(racing))
    body = api.get(SHADOW).get_json()
    assert figures(body) == recount(container, 0.7)
    assert result_rows(container) == body["decisions"]


def test_a_worker_process_killed_mid_way_then_run_again_counts_exactly(
        api: Api, container: Container, clock: FakeClock, database_url: str) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    evaluate(api, AMOUNTS * 4)
    env = {**server_env(database_url), "RULES_SERVICE_SHADOW_BATCH": "1",
           "RULES_SERVICE_SHADOW_COMMIT_MARGIN": "0",
           "RULES_SERVICE_WORKER_POLL_INTERVAL": "0.05"}
    process = subprocess.Popen([*cli_command(), "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while result_rows(container) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)  # no chance to finish anything
        process.wait(30)
    partial = result_rows(container)
    assert 0 < partial < len(AMOUNTS) * 4
    done = subprocess.run([*cli_command(), "worker", "--once"], env=env, timeout=300,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"shadowed {len(AMOUNTS) * 4 - partial}," in done.stdout
    body = api.get(SHADOW).get_json()
    assert body["decisions"] == result_rows(container) == len(AMOUNTS) * 4
    assert figures(body) == recount(container, 1.0)


def test_a_decision_committed_late_inside_the_margin_is_still_counted(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    start = clock.now
    evaluate(api, AMOUNTS[:5])
    clock.now = start + timedelta(seconds=60)
    margin = ShadowRunner(container.uow, lambda: container.evaluator,
                          ShadowSettings(commit_margin_s=10.0))
    margin.catch_up()
    assert api.get(SHADOW).get_json()["decisions"] == 5
    # Stamped before the last read (at +55 s), committed after it, as a slow group commit
    # does: a cursor "after the last id read" would skip it; the anti-join finds it.
    clock.now = start + timedelta(seconds=55)
    late = evaluate(api, [150])[0]
    clock.now = start + timedelta(seconds=61)
    margin.catch_up()
    body = api.get(SHADOW).get_json()
    assert body["decisions"] == 6
    assert late["decision_id"] in {e["decision_id"] for e in body["examples"]}
    assert figures(body) == recount(container, 1.0)


def test_overload_sheds_the_oldest_and_counts_them_as_not_shadowed(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    decided = evaluate(api, AMOUNTS)
    runner(container, batch=3, max_backlog=6).catch_up()
    body = api.get(SHADOW).get_json()
    assert (body["decisions"], body["not_shadowed"]) == (6, len(AMOUNTS) - 6)
    newest = {d["decision_id"] for d in decided[-6:]}
    with container.engine.connect() as conn:
        kept = set(conn.execute(select(ShadowResultRow.decision_id).where(
            ShadowResultRow.state != "shed")).scalars())
    assert kept == newest


def test_the_business_owner_s_threshold_raises_the_alert_once(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1, "alert_above": 0.1}, who="biz").status_code == 200
    evaluate(api, [150] * 25)  # every one escalated now, approved in shadow
    assert runner(container).catch_up().alerts == 1
    evaluate(api, [160] * 5)
    assert runner(container).catch_up().alerts == 0
    with container.engine.connect() as conn:
        events = conn.execute(select(OutboxEventRow.data).where(
            OutboxEventRow.type == "version.shadow_diverged")).scalars().all()
    assert len(events) == 1 and events[0]["version"] == 2
    assert events[0]["by_change"] == {"escalate->approve": 25}
    assert api.get(SHADOW).get_json()["alerted_at"]


def test_one_runner_works_at_a_time_across_processes(
        api: Api, container: Container, clock: FakeClock) -> None:
    active_v1_pending_v2(api)
    clock.advance(timedelta(seconds=1))
    assert put(api, SHADOW, {"sample": 1}).status_code == 200
    evaluate(api, AMOUNTS)
    holder = container.uow()
    with holder:
        assert holder.shadows.lead()
        meanwhile = runner(container).run_once()
    if container.engine.dialect.name == "postgresql":
        assert meanwhile.decided == 0  # another worker's runner held the lock
        assert result_rows(container) == 0
    else:
        assert meanwhile.decided == len(AMOUNTS)  # one worker on SQLite: no lock to wait for
    runner(container).catch_up()
    assert figures(api.get(SHADOW).get_json()) == recount(container, 1.0)
