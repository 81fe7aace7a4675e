"""The bench's own logic: zen-engine decides the example rules as the reference evaluator
does, seeded rollups count with the service's bucketing, and profiles are sorted right."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import inputs as bench_inputs
from bench import seed
from bench.profile import categorise
from rules_service.engine import ReferenceEvaluator
from rules_service.language.evaluator import evaluate as reference_condition
from rules_service.language.parser import parse_condition

RULESET = bench_inputs.ruleset()
REFERENCE = ReferenceEvaluator()


def _zen_rules() -> Any:
    pytest.importorskip("zen", reason="zen-engine is a bench extra: pip install -e '.[bench]'")
    from bench.zen_rules import ZenRules

    return ZenRules(RULESET)


def test_zen_decides_every_example_test_input_like_the_reference_evaluator() -> None:
    zen = _zen_rules()
    for case in RULESET.tests:
        data = bench_inputs.validated(RULESET, [case.input])[0]
        expected = REFERENCE.evaluate(RULESET, data)
        assert zen.evaluate(data) == (tuple(expected.fired_ids), expected.outcome.value), case.name


def test_zen_decides_the_bench_inputs_like_the_reference_evaluator() -> None:
    zen = _zen_rules()
    data = bench_inputs.validated(RULESET, bench_inputs.raw_inputs(RULESET, 300, seed=3))
    for item in data:
        expected = REFERENCE.evaluate(RULESET, item)
        assert zen.evaluate(item) == (tuple(expected.fired_ids), expected.outcome.value), item


_maybe = st.none() | st.just("absent")
_inputs = st.fixed_dictionaries({}, optional={
    "amount": st.integers(-10, 9000) | st.floats(0, 9000, allow_nan=False) | st.none(),
    "category": st.sampled_from(["travel", "meals", "hardware", "other"]) | st.none(),
    "has_receipt": st.booleans() | st.none(),
    "currency": st.sampled_from(["EUR", "USD"]) | st.none(),
    "merchant": st.sampled_from(["Grand CASINO", "gift card shop", "Bakery", ""]) | st.none(),
    "cost_center": st.sampled_from(["CC-1234", "1234", "CC-12345"]) | st.none(),
    "trip": st.none() | st.fixed_dictionaries({}, optional={
        "international": st.booleans() | st.none(),
        "nights": st.integers(0, 30) | st.none()}),
})
_CONDITIONS = [rule.condition for rule in RULESET.rules] + [parse_condition(text) for text in (
    "not (amount > 100)",
    "not exists(trip.nights) or trip.nights < 3",
    "category not in [\"travel\", \"meals\"] or not has_receipt",
    "merchant matches \"^$\" and not (currency == \"EUR\")",
)]


@settings(max_examples=150, deadline=None)
@given(data=_inputs)
def test_each_translated_condition_holds_exactly_when_the_reference_says_so(
        data: dict[str, Any]) -> None:
    zen = pytest.importorskip("zen")
    from bench.zen_rules import to_zen

    thresholds = dict(RULESET.thresholds)
    for condition in _CONDITIONS:
        expected = reference_condition(condition, data, thresholds)
        assert zen.evaluate_expression(to_zen(condition, thresholds), data) is expected, \
            (to_zen(condition, thresholds), data)


def test_seeded_decisions_are_rolled_up_once_each_with_their_resolutions() -> None:
    templates = [{"ruleset_id": 1, "version": 1, "input": "{}", "outcome": outcome,
                  "fired_rules": "[]", "deciding_rules": "[]", "caller": "bot",
                  "to_role": "approver"} for outcome in ("approve", "escalate", "reject")]
    rows = list(seed._rows(templates, 2000, datetime(2026, 1, 31, tzinfo=UTC),
                           random.Random(1), seed._sqlite_stamp))
    decided, resolved = seed._rolled(rows)
    assert len(decided) == 2000
    decision, _, at_us = rows[0]
    assert decided[0].evaluated_at == datetime.fromtimestamp(at_us / 1e6, UTC)
    assert (decided[0].outcome, decided[0].duration_ms) == (decision["outcome"],
                                                            decision["duration_ms"])
    escalated = [e for _, e, _ in rows if e is not None]
    assert len(resolved) == sum(1 for e in escalated if e["status"] == "resolved") > 0
    assert all("resolved_us" not in e for e in escalated)  # never written as a column
    assert all(r.resolved_at > r.created_at for r in resolved)
    assert decision["evaluated_at"].startswith("2026-01-01 ")
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)


def test_escalations_are_seeded_for_escalate_outcomes_only() -> None:
    templates = [{"ruleset_id": 1, "version": 1, "input": "{}", "outcome": "approve",
                  "fired_rules": "[]", "deciding_rules": "[]", "caller": "bot",
                  "to_role": None}]
    rows = list(seed._rows(templates, 5000, datetime(2026, 1, 31, tzinfo=UTC),
                           random.Random(2), seed._pg_stamp))
    for decision, escalation, _ in rows:
        assert (escalation is not None) == (decision["outcome"] == "escalate")
        if escalation is not None:  # a fallback decision escalates
            assert decision["fallback"] and escalation["decision_id"] == decision["id"]


def test_profile_samples_are_sorted_by_what_the_request_thread_was_doing() -> None:
    request = "run (gunicorn/workers/gthread.py:1);handle_request (gunicorn/workers/gthread.py:2)"
    lock = f"{request};record_decision (services/decisions.py:3);_on_begin (database.py:4)"
    assert categorise(lock) == "SQLite: waiting for the write lock (BEGIN IMMEDIATE)"
    assert categorise(f"{request};authenticate_request (api/auth.py:5)") \
        == "token lookup (authentication)"
    assert categorise("run (gunicorn/workers/gthread.py:1);accept (socket.py:9)") is None


def test_cpu_per_request_divides_each_part_and_the_tree_by_the_requests() -> None:
    from bench.cpu import CpuSample, per_request_ms

    before = CpuSample({"api": 1.0, "engine": 0.5, "database": 0.0})
    after = CpuSample({"api": 3.0, "engine": 0.9, "database": 0.6})
    out = per_request_ms(before, after, 1000)
    assert out == {"api": 2.0, "engine": 0.4, "database": 0.6, "tree": 3.0}
    assert per_request_ms(before, after, 0)["tree"] is None


def test_cpu_profile_steps_take_the_most_specific_marker_first() -> None:
    from bench.cpu_profile import OTHER, step_of

    request = "handle_request (gunicorn/workers/gthread.py:1);wsgi_app (flask/app.py:2)"
    writer = "_run (rules_service/adapters/decision_log.py:3)"
    assert step_of(f"{writer};write_decisions (rules_service/adapters/decision_log.py:4);"
                   "add_decisions (rules_service/adapters/rollups.py:5)").startswith("rollups")
    assert step_of(f"{writer};write_decisions (rules_service/adapters/decision_log.py:4)"
                   ).startswith("group commit")
    assert step_of(f"{request};evaluate (rules_service/engine/pool.py:6)").startswith(
        "engine call")
    assert step_of(request).startswith("Flask")
    assert step_of("main (somewhere.py:1)") == OTHER


def test_the_big_rulesets_bench_builds_its_plain_rules_and_reads_its_goals() -> None:
    from bench import run as bench_run
    from bench.big_rulesets import plain_definition
    from rules_service.adapters.ruleset_files import load_ruleset_definition

    plain = load_ruleset_definition(plain_definition(120))
    assert len(plain.rules) == 120
    assert REFERENCE.fired(plain, {"category": "hardware", "region": "eu", "amount": 50}) == [
        "r0"]
    figures = {"policy": {"single_p50_ms": 1.0, "batch_per_s": 4000.0},
               "table": {"single_p50_ms": 2.5, "batch_per_s": 1000.0},
               "plain": {"single_p50_ms": 1.0, "batch_per_s": 999.0}}
    from bench.big_rulesets import _ratios

    big = {"load_table_file_s": 0.9, "engine (1 worker)": {**figures, "goals": _ratios(figures)}}
    goals = {g["goal"]: g["pass"] for g in bench_run.goals({"service": {}, "big": big})}
    assert goals == {"5,000-row table single p50 / 12-rule policy's": False,
                     "5,000-row table batch rate / 12-rule policy's": True,
                     "3,000 plain rules batched decisions/s": False,
                     "loading a 5,000-row table file (s)": True}
