"""Operations figures on the real database: GET /v1/dashboard and GET /metrics, by number.

The world below is built once per test through the real governance services (versions,
sign-offs, scheduled activation, rollback) with a hand-moved clock; decisions and
escalations are written through the ORM with chosen timestamps and durations, and
counted into the rollups as the services count them (``adapters.rollups``), so every
figure has a value worked out by hand in the comments.

Latency and cycle-time percentiles come from histograms: the bucket is the one holding the
nearest-rank value, the value is interpolated by rank inside it and capped at the
maximum. Where that differs from the exact nearest-rank value, the comment works it out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from api import create_app
from rules_service.adapters import rollup_fold, rollups
from rules_service.adapters.orm import DecisionRow, EscalationRow, RulesetRow
from rules_service.bootstrap import Container
from rules_service.domain import figures
from rules_service.domain.decision import decide
from rules_service.domain.errors import NotFound, RequestInvalid
from rules_service.services import dashboard, decisions, governance
from tests.integration.conftest import FakeClock, definition

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Refunds decisions inside the default 7-day window: one per hour back from now (the first
# exactly at now). Durations 1..20 ms, shuffled against time so SQL must really sort them.
REFUND_DURATIONS = [7.0, 3.0, 19.0, 1.0, 12.0, 20.0, 5.0, 9.0, 14.0, 2.0,
                    16.0, 11.0, 4.0, 18.0, 6.0, 10.0, 13.0, 8.0, 17.0, 15.0]
# (outcome, fallback, version) per decision, same order: 11 approve by the rules (5 made by
# version 1, 6 by version 2), 1 approve by fallback, 3 reject (version 2), 5 escalate of
# which 2 by fallback.
REFUND_KINDS = ([("approve", False, 1)] * 5 + [("approve", False, 2)] * 6
                + [("approve", True, 2)] + [("reject", False, 2)] * 3
                + [("escalate", False, 2)] * 3 + [("escalate", True, 2)] * 2)
ORDER_DURATIONS = [5.0, 100.0, 5.0, 7.0]


@dataclass
class World:
    """What the tests need to know about the data they built."""

    now: datetime
    refunds_id: int
    orders_id: int


def _decision(ruleset_id: int, version: int, outcome: str, fallback: bool, at: datetime,
              duration_ms: float) -> DecisionRow:
    return DecisionRow(
        id=str(uuid.uuid4()), ruleset_id=ruleset_id, version=version, input={"amount": 1},
        outcome=outcome, fired_rules=[], deciding_rules=[], fallback=fallback,
        fallback_reason="engine timeout" if fallback else None, caller="bot",
        evaluated_at=at, duration_ms=duration_ms)


def _escalation(decision: DecisionRow, created: datetime, due: datetime | None,
                resolved: datetime | None = None) -> EscalationRow:
    return EscalationRow(
        id=str(uuid.uuid4()), decision_id=decision.id,
        decision_evaluated_at=decision.evaluated_at, ruleset_id=decision.ruleset_id,
        version=decision.version, to_role="approver",
        status="resolved" if resolved else "open", due_at=due, created_at=created,
        resolved_at=resolved, resolved_by="appr" if resolved else None,
        resolution="approve" if resolved else None)


def _store(session: Session, decision_rows: list[DecisionRow],
           escalation_rows: list[EscalationRow] = ()) -> None:  # type: ignore[assignment]
    """Inserts the rows and counts them into the rollups, as the services do."""
    session.add_all([*decision_rows, *escalation_rows])
    session.flush()
    rollups.add_decisions(session.connection(), [
        rollups.RolledDecision(r.ruleset_id, r.version, r.evaluated_at, r.outcome, r.fallback,
                               r.duration_ms) for r in decision_rows])
    rollups.add_resolutions(session.connection(), [
        rollups.RolledResolution(e.ruleset_id, e.created_at, e.resolved_at, e.due_at)
        for e in escalation_rows if e.resolved_at is not None])


def _at(clock: FakeClock, moment: datetime) -> None:
    clock.now = moment


@pytest.fixture
def world(container: Container, people: dict[str, str], clock: FakeClock) -> World:
    """Two rulesets, their version histories, decisions and escalations."""
    now = clock.now
    uow, ev = container.uow, container.evaluator

    # orders: one version, long ago (outside the default window): proposed -> active in 1h.
    _at(clock, now - 10 * DAY)
    governance.propose_version(uow(), ev, "orders", actor="root", definition=definition(
        name="orders", title="Orders", impact={"minutes_saved_per_auto_decision": 3},
        runbook={"purpose": "Ship.", "escalation": {"path": ["appr"],
                                                    "response_time_target": "30m"}}))
    _at(clock, now - 10 * DAY + HOUR)
    governance.sign_off(uow(), "orders", 1, decision="approve", actor="biz")
    governance.sign_off(uow(), "orders", 1, decision="approve", actor="appr")

    # refunds v1: proposed 3 days ago, approved and active 5h later.
    _at(clock, now - 3 * DAY)
    governance.propose_version(uow(), ev, "refunds", actor="root", definition=definition())
    _at(clock, now - 3 * DAY + 2 * HOUR)
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="biz")
    _at(clock, now - 3 * DAY + 5 * HOUR)
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="appr")

    # refunds v2 (8 minutes saved each): proposed 2 days ago, approved 3h later, scheduled
    # for 1 day ago and activated half an hour after that.
    _at(clock, now - 2 * DAY)
    governance.propose_version(uow(), ev, "refunds", actor="dev",
                               effective_at=now - DAY,
                               definition=definition(200, impact={
                                   "minutes_saved_per_auto_decision": 8}))
    _at(clock, now - 2 * DAY + HOUR)
    governance.sign_off(uow(), "refunds", 2, decision="approve", actor="biz")
    _at(clock, now - 2 * DAY + 3 * HOUR)
    governance.sign_off(uow(), "refunds", 2, decision="approve", actor="appr")
    _at(clock, now - DAY + HOUR / 2)
    assert governance.activate_due(uow()) == [("refunds", 2)]

    # Rolled back to v1 two hours ago: v1's activated_at moves, its first activation not.
    _at(clock, now - 2 * HOUR)
    governance.rollback(uow(), "refunds", to_version=1, reason="v2 misbehaves", actor="ops")
    # refunds v3: proposed an hour ago, still pending.
    _at(clock, now - HOUR)
    governance.propose_version(uow(), ev, "refunds", actor="dev", definition=definition(300))
    _at(clock, now)

    with container.session_factory() as session, session.begin():
        ids = {name: rid for rid, name in session.query(RulesetRow.id, RulesetRow.name)}
        refunds, orders = ids["refunds"], ids["orders"]
        rows = [_decision(refunds, version, outcome, fallback, now - i * HOUR, duration)
                for i, ((outcome, fallback, version), duration)
                in enumerate(zip(REFUND_KINDS, REFUND_DURATIONS, strict=True))]
        # Two old escalated decisions, outside the window: counted by /metrics only.
        old = [_decision(refunds, 1, "escalate", False, now - 8 * DAY, 1000.0)
               for _ in range(2)]
        orders_rows = [_decision(orders, 1, "approve", False, now - (3 + i) * HOUR, ms)
                       for i, ms in enumerate(ORDER_DURATIONS)]
        _store(session, rows + old + orders_rows)
        escalated = [r for r in rows if r.outcome == "escalate"]
        _store(session, [], [
            # open and overdue; open and not yet due
            _escalation(escalated[0], now - 6 * HOUR, now - 2 * HOUR),
            _escalation(escalated[1], now - HOUR, now + 3 * HOUR),
            # resolved in the window: in 2h (within its 4h target), and in 6h (late)
            _escalation(escalated[2], now - 30 * HOUR, now - 26 * HOUR, now - 28 * HOUR),
            _escalation(escalated[3], now - 50 * HOUR, now - 46 * HOUR, now - 44 * HOUR),
            # resolved long ago: outside the window
            _escalation(old[0], now - 8 * DAY, now - 8 * DAY + 4 * HOUR,
                        now - 8 * DAY + HOUR),
        ])
    return World(now, refunds, orders)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the API."""
    return app.test_client()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["ruleset"]: entry for entry in result["rulesets"]}


# --------------------------------------------------------------------------- the service


def test_throughput_outcome_mix_and_rates_count_the_window_only(
        container: Container, world: World) -> None:
    refunds = _by_name(dashboard.dashboard(container.uow()))["refunds"]
    # 20 decisions in 7 days (the two 8-day-old ones are out), the newest at exactly now.
    assert refunds["decisions"] == {"count": 20, "per_hour": pytest.approx(20 / 168)}
    assert refunds["outcomes"] == {"approve": {"count": 12, "share": 0.6},
                                   "escalate": {"count": 5, "share": 0.25},
                                   "reject": {"count": 3, "share": 0.15}}
    assert refunds["exception_rate"] == 0.25
    assert refunds["fallbacks"] == {"count": 3, "rate": 0.15}


def test_latency_percentiles_come_from_the_histogram_of_the_window(
        container: Container, world: World) -> None:
    result = dashboard.dashboard(container.uow())
    refunds, orders = _by_name(result)["refunds"], _by_name(result)["orders"]
    # 1..20 ms fill the buckets (5, 10] and (10, 20] evenly, so interpolating by rank gives
    # the exact nearest-rank values: p50 the 10th value, p95 the 19th, p99 the 20th.
    assert refunds["latency_ms"] == {"p50": 10.0, "p95": 19.0, "p99": 20.0, "mean": 10.5,
                                     "max": 20.0}
    # 5, 5, 7, 100: the 2nd value is the last of (2, 5], the 4th the only one of (50, 100].
    assert orders["latency_ms"] == {"p50": 5.0, "p95": 100.0, "p99": 100.0,
                                    "mean": pytest.approx(29.25), "max": 100.0}
    every = REFUND_DURATIONS + ORDER_DURATIONS
    # Exact nearest-rank p50 of the 24 values is 9 (the 12th); the histogram puts 7 values
    # at or below 5 ms and 6 in (5, 10], so the 12th is the 5th of 6 there: 5 + 5 x 5/6.
    # Same bucket as the exact value, as promised; mean and max stay exact.
    assert figures.percentile(every, 50) == 9.0
    assert result["overall"]["latency_ms"] == {
        "p50": pytest.approx(5 + 5 * 5 / 6), "p95": 20.0, "p99": 100.0,
        "mean": pytest.approx(sum(every) / 24), "max": 100.0}
    assert result["percentile_method"] == figures.PERCENTILE_METHOD


def test_escalations_report_open_overdue_target_and_cycle_time(
        container: Container, world: World) -> None:
    refunds = _by_name(dashboard.dashboard(container.uow()))["refunds"]
    # Raised counts the window's escalate decisions (5): recording one raises its
    # escalation at the same moment, so the two are the same figure; this hand-built world
    # attaches escalations to only four of them.
    assert refunds["escalations"] == {
        "raised": 5, "open": 2, "overdue": 1, "resolved": 2,
        "resolved_within_target": 1, "resolved_within_target_rate": 0.5,
        # 2h and 6h: p50 is the first, the only one in the bucket (1h, 2h], so its bound;
        # p95 is the second, alone in (4h, 8h]: its bound capped at the maximum, 6h.
        "resolution_time_seconds": {"count": 2, "p50": 7200.0, "p95": 21600.0,
                                    "mean": 14400.0, "max": 21600.0},
        "response_time_target": "4h", "response_time_target_seconds": 14400.0,
        # Breaches are marked by the notification worker, which has not run here.
        "breached": 0,
    }


def test_overdue_is_judged_against_the_current_time(container: Container, world: World,
                                                    clock: FakeClock) -> None:
    clock.advance(4 * HOUR)  # the second open escalation is now past due too
    refunds = _by_name(dashboard.dashboard(container.uow()))["refunds"]
    assert (refunds["escalations"]["open"], refunds["escalations"]["overdue"]) == (2, 2)


def test_change_approval_delay_counts_first_activations_not_rollbacks(
        container: Container, world: World) -> None:
    refunds = _by_name(dashboard.dashboard(container.uow()))["refunds"]
    h = 3600.0
    assert refunds["change_approval"] == {
        "proposed": 3,
        # v1 5h, v2 3h
        "proposed_to_approved_seconds": {"count": 2, "median": 3 * h, "mean": 4 * h,
                                         "max": 5 * h},
        # v1 at once, v2 21.5h (approved 2d-21h ago, activated 1d-30m ago)
        "approved_to_active_seconds": {"count": 2, "median": 0.0, "mean": 10.75 * h,
                                       "max": 21.5 * h},
        # v1 5h, v2 24.5h; the rollback two hours ago re-activated v1 and is not a change
        "proposed_to_active_seconds": {"count": 2, "median": 5 * h, "mean": 14.75 * h,
                                       "max": 24.5 * h},
    }
    assert (refunds["active_version"], refunds["pending_versions"],
            refunds["scheduled_versions"]) == (1, 1, 0)


def test_hours_saved_values_auto_decisions_at_the_active_versions_minutes(
        container: Container, world: World) -> None:
    result = dashboard.dashboard(container.uow())
    refunds, orders = _by_name(result)["refunds"], _by_name(result)["orders"]
    # 11 rule-made approvals + 3 rejections; the fallback approval saves nobody's time.
    # Version 1 (5 minutes each) is active again after the rollback.
    assert refunds["impact"] == {"auto_decided": 14, "minutes_saved_per_auto_decision": 5.0,
                                 "hours_saved": pytest.approx(14 * 5 / 60)}
    assert orders["impact"] == {"auto_decided": 4, "minutes_saved_per_auto_decision": 3.0,
                                "hours_saved": pytest.approx(4 * 3 / 60)}
    assert result["overall"]["impact"] == {"auto_decided": 18,
                                           "hours_saved": pytest.approx(70 / 60 + 0.2)}


def test_overall_adds_up_the_rulesets(container: Container, world: World) -> None:
    result = dashboard.dashboard(container.uow())
    overall = result["overall"]
    assert overall["rulesets"] == 2
    assert overall["decisions"]["count"] == 24
    assert overall["outcomes"]["approve"] == {"count": 16, "share": pytest.approx(16 / 24)}
    assert overall["exception_rate"] == pytest.approx(5 / 24)
    assert overall["fallbacks"] == {"count": 3, "rate": pytest.approx(3 / 24)}
    assert (overall["escalations"]["open"], overall["escalations"]["overdue"]) == (2, 1)
    assert "response_time_target" not in overall["escalations"]
    assert overall["pending_versions"] == 1
    assert result["window"]["hours"] == 168.0
    assert result["window"]["until"] == world.now.isoformat()


def test_a_longer_window_reaches_older_decisions_and_changes(
        container: Container, world: World) -> None:
    result = dashboard.dashboard(container.uow(), since=timedelta(days=14))
    refunds, orders = _by_name(result)["refunds"], _by_name(result)["orders"]
    assert refunds["decisions"]["count"] == 22
    assert refunds["latency_ms"]["max"] == 1000.0
    assert refunds["escalations"]["resolved"] == 3
    assert orders["change_approval"]["proposed"] == 1
    assert orders["change_approval"]["proposed_to_active_seconds"]["median"] == 3600.0


def test_an_explicit_window_is_inclusive_at_its_start_and_exclusive_at_its_end(
        container: Container, world: World) -> None:
    since, until = world.now - 10 * HOUR, world.now - 5 * HOUR
    result = dashboard.dashboard(container.uow(), ruleset="refunds", since=since, until=until)
    refunds = result["rulesets"][0]
    # Decisions 6..10 hours old: five of them; the one at exactly `until` is out.
    assert refunds["decisions"] == {"count": 5, "per_hour": 1.0}
    assert sorted(REFUND_DURATIONS[6:11]) == [2.0, 5.0, 9.0, 14.0, 16.0]
    # The exact p50 (3rd value) is 9, alone in the bucket (5, 10]: its bound is reported.
    assert refunds["latency_ms"]["p50"] == 10.0
    assert result["window"] == {"since": since.isoformat(), "until": until.isoformat(),
                                "hours": 5.0}


def test_one_rulesets_dashboard_has_overall_equal_to_it(container: Container,
                                                        world: World) -> None:
    result = dashboard.dashboard(container.uow(), ruleset="orders")
    assert [e["ruleset"] for e in result["rulesets"]] == ["orders"]
    only = result["rulesets"][0]
    for key in ("decisions", "latency_ms", "outcomes", "exception_rate", "fallbacks",
                "change_approval"):
        assert result["overall"][key] == only[key]


def test_an_unknown_ruleset_is_not_found(container: Container, world: World) -> None:
    with pytest.raises(NotFound, match="no ruleset named nope"):
        dashboard.dashboard(container.uow(), ruleset="nope")


def test_a_window_that_ends_before_it_starts_is_refused(container: Container,
                                                        world: World) -> None:
    with pytest.raises(RequestInvalid) as caught:
        dashboard.dashboard(container.uow(), since=world.now + HOUR)
    assert caught.value.problems[0].place == "since"


def test_an_empty_database_gives_zeros_and_undefined_rates(container: Container) -> None:
    result = dashboard.dashboard(container.uow())
    assert result["rulesets"] == []
    overall = result["overall"]
    assert overall["decisions"] == {"count": 0, "per_hour": 0.0}
    assert overall["latency_ms"] == {"p50": None, "p95": None, "p99": None, "mean": None,
                                     "max": None}
    assert overall["exception_rate"] is None
    assert overall["fallbacks"] == {"count": 0, "rate": None}
    assert overall["impact"] == {"auto_decided": 0, "hours_saved": 0.0}


def test_decisions_recorded_and_resolved_by_the_services_are_counted(
        container: Container, people: dict[str, str], clock: FakeClock) -> None:
    uow = container.uow
    governance.propose_version(uow(), container.evaluator, "refunds", actor="root",
                               definition=definition())
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="biz")
    governance.sign_off(uow(), "refunds", 1, decision="approve", actor="appr")
    ruleset = governance.load_version(uow(), "refunds").ruleset
    for fired, ms in ((["small"], 2.0), (["huge"], 4.0), ([], 6.0)):
        decisions.record_decision(uow(), ruleset="refunds", version=1, caller="bot",
                                  evaluation=decide(ruleset, fired, {"amount": 1}, ms))
    rollup_fold.fold_pending(container.engine)  # what the API's background fold does
    clock.advance(5 * HOUR)  # past the 4h response-time target of both escalations
    refunds = dashboard.dashboard(uow())["rulesets"][0]
    assert refunds["outcomes"]["escalate"]["count"] == 2
    # 2, 4, 6 ms: the median, 4, is alone in the bucket (2, 5]: its bound is reported.
    assert refunds["latency_ms"]["p50"] == 5.0
    assert (refunds["escalations"]["open"], refunds["escalations"]["overdue"]) == (2, 2)
    assert refunds["impact"]["hours_saved"] == pytest.approx(5 / 60)

    first = decisions.list_escalations(uow(), status="open")[0]
    decisions.resolve_escalation(uow(), first.id, resolution="approve", actor="appr")
    escalations = dashboard.dashboard(uow())["rulesets"][0]["escalations"]
    assert (escalations["open"], escalations["overdue"], escalations["resolved"]) == (1, 1, 1)
    assert escalations["resolved_within_target"] == 0
    assert escalations["resolution_time_seconds"]["p50"] == 5 * 3600.0


# --------------------------------------------------------------------------- over HTTP


def test_dashboard_route_returns_the_figures(client: FlaskClient, world: World,
                                             people: dict[str, str]) -> None:
    response = client.get("/v1/dashboard?ruleset=refunds&since=24h",
                          headers=_auth(people["bot"]))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["ruleset"] == "refunds"
    refunds = body["rulesets"][0]
    # Decisions 0..24 hours old inclusive of now: all 20 (the oldest is 19h old).
    assert refunds["decisions"]["count"] == 20
    assert refunds["latency_ms"]["p95"] == 19.0
    assert refunds["escalations"]["response_time_target"] == "4h"
    # v2 was activated 23.5h ago; v1's activation was 3 days ago.
    assert refunds["change_approval"]["approved_to_active_seconds"]["count"] == 1
    assert body["window"]["hours"] == 24.0
    # The rollups are read in whole minutes; the answer says which, and how percentiles
    # are estimated.
    assert body["rollup_window"]["until"] == (
        world.now.replace(second=0) + timedelta(minutes=1)).isoformat()
    assert "same bucket" in body["percentile_method"]


def test_dashboard_route_takes_iso_moments(client: FlaskClient, world: World,
                                           people: dict[str, str]) -> None:
    since = (world.now - 10 * HOUR).isoformat()
    until = (world.now - 5 * HOUR).isoformat()
    response = client.get("/v1/dashboard", query_string={"since": since, "until": until},
                          headers=_auth(people["bot"]))
    assert response.status_code == 200, response.json
    assert _by_name(response.json)["refunds"]["decisions"]["count"] == 5


def test_dashboard_route_names_every_bad_query_parameter(client: FlaskClient,
                                                         people: dict[str, str]) -> None:
    response = client.get("/v1/dashboard?since=yesterday&until=soon",
                          headers=_auth(people["bot"]))
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_failed"
    assert {d["place"] for d in error["details"]} == {"since", "until"}


def test_dashboard_route_refuses_a_backwards_window(client: FlaskClient,
                                                    people: dict[str, str]) -> None:
    response = client.get("/v1/dashboard", headers=_auth(people["bot"]), query_string={
        "since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["place"] == "until"


def test_dashboard_route_answers_404_for_an_unknown_ruleset(client: FlaskClient,
                                                            people: dict[str, str]) -> None:
    response = client.get("/v1/dashboard?ruleset=nope", headers=_auth(people["bot"]))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1/dashboard", "/metrics"])
def test_operations_routes_need_a_token(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"


def _scrape(client: FlaskClient, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                     float]:
    response = client.get("/metrics", headers=_auth(token))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_metrics_report_all_time_counts_and_current_state(
        client: FlaskClient, world: World, people: dict[str, str]) -> None:
    samples = _scrape(client, people["bot"])
    decided = "rules_service_decisions_total"
    assert samples[_key(decided, ruleset="refunds", outcome="approve")] == 12
    assert samples[_key(decided, ruleset="refunds", outcome="reject")] == 3
    # 5 in the window and the 2 old ones: counters cover all time.
    assert samples[_key(decided, ruleset="refunds", outcome="escalate")] == 7
    assert samples[_key(decided, ruleset="orders", outcome="approve")] == 4
    assert samples[_key(decided, ruleset="orders", outcome="reject")] == 0
    assert samples[_key("rules_service_fallbacks_total", ruleset="refunds")] == 3
    assert samples[_key("rules_service_fallbacks_total", ruleset="orders")] == 0
    assert samples[_key("rules_service_escalations_open", ruleset="refunds")] == 2
    assert samples[_key("rules_service_escalations_overdue", ruleset="refunds")] == 1
    assert samples[_key("rules_service_escalations_open", ruleset="orders")] == 0
    assert samples[_key("rules_service_active_version", ruleset="refunds")] == 1
    assert samples[_key("rules_service_active_version", ruleset="orders")] == 1
    assert samples[_key("rules_service_pending_versions", ruleset="refunds")] == 1
    assert samples[_key("rules_service_pending_versions", ruleset="orders")] == 0


def test_metrics_value_hours_saved_at_the_minutes_of_the_deciding_version(
        client: FlaskClient, world: World, people: dict[str, str]) -> None:
    samples = _scrape(client, people["bot"])
    # version 1: 5 approvals x 5 min; version 2: 6 approvals + 3 rejections x 8 min.
    assert samples[_key("rules_service_hours_saved_total", ruleset="refunds")] == \
        pytest.approx((5 * 5 + 9 * 8) / 60)
    assert samples[_key("rules_service_hours_saved_total", ruleset="orders")] == \
        pytest.approx(0.2)


def test_metrics_give_latency_as_a_cumulative_histogram_in_seconds(
        client: FlaskClient, world: World, people: dict[str, str]) -> None:
    samples = _scrape(client, people["bot"])
    name = "rules_service_evaluation_latency_seconds"

    def bucket(ruleset: str, le: str) -> float:
        return samples[_key(f"{name}_bucket", ruleset=ruleset, le=le)]

    # refunds, all time: 1..20 ms and the two old ones of 1000 ms.
    assert [bucket("refunds", le) for le in ("0.0005", "0.001", "0.002", "0.005", "0.01",
                                              "0.02", "0.5", "1.0", "2.0", "+Inf")] == \
        [0, 1, 2, 5, 10, 20, 20, 22, 22, 22]
    assert samples[_key(f"{name}_count", ruleset="refunds")] == 22
    assert samples[_key(f"{name}_sum", ruleset="refunds")] == pytest.approx(2.21)
    # orders: 5, 5, 7 and 100 ms.
    assert bucket("orders", "0.005") == 2
    assert bucket("orders", "0.05") == 3
    assert bucket("orders", "0.1") == 4
    assert samples[_key(f"{name}_sum", ruleset="orders")] == pytest.approx(0.117)
    # The old gauge with a quantile label is gone: quantiles come from the buckets.
    assert not any(n == name for n, _ in samples)


def test_metrics_follow_the_database_between_scrapes(
        client: FlaskClient, container: Container, world: World,
        people: dict[str, str]) -> None:
    key = _key("rules_service_decisions_total", ruleset="orders", outcome="reject")
    assert _scrape(client, people["bot"])[key] == 0
    # Another process (any gunicorn worker) records a decision: the next scrape sees it.
    with container.session_factory() as session, session.begin():
        _store(session, [_decision(world.orders_id, 1, "reject", False, world.now, 1.0)])
    assert _scrape(client, people["bot"])[key] == 1


def test_each_app_has_its_own_metrics_registry(container: Container, world: World,
                                               people: dict[str, str]) -> None:
    first, second = create_app(container=container), create_app(container=container)
    assert first.extensions["rules_service.metrics_registry"] is not \
        second.extensions["rules_service.metrics_registry"]
    for app in (first, second):
        samples = _scrape(app.test_client(), people["bot"])
        assert samples[_key("rules_service_active_version", ruleset="orders")] == 1


def test_openapi_documents_the_operations_routes(client: FlaskClient,
                                                 people: dict[str, str]) -> None:
    spec = client.get("/openapi.json", headers=_auth(people["bot"])).json
    dashboard_op = spec["paths"]["/v1/dashboard"]["get"]
    assert {p["name"] for p in dashboard_op["parameters"]} >= {"ruleset", "since", "until"}
    assert {"200", "401", "404", "422"} <= set(dashboard_op["responses"])
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
