"""The why of a decision: every rule, its top-level parts, the values they read, the summary."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.domain.explanation import explain, rule_parts
from rules_service.domain.inputs import validate_input
from rules_service.engine import ReferenceEvaluator

HEAD = """\
name: refunds
title: Refunds
owners:
  business_owner: {primary: a, backup: b}
  operations_owner: {primary: a, backup: b}
  approver: {primary: a, backup: b}
  maintainer: {primary: a, backup: b}
thresholds: {supervisor_limit: 1200.5, instant_limit: 75, region: "EU"}
inputs:
  amount: {type: number, required: true, minimum: 0}
  days_since_purchase: {type: integer}
  category: {type: string, enum: [meals, travel, hardware], default: meals}
  has_receipt: {type: boolean, default: false}
  region: {type: string}
default: approve
fallback: escalate
runbook: {purpose: p, escalation: {path: [x], response_time_target: 4h}}
"""

RULES = HEAD + """\
rules:
  - id: big-refund
    when: amount > thresholds.supervisor_limit
    then: escalate
  - id: instant-small
    when: amount <= thresholds.instant_limit and   days_since_purchase <= 30
    then: approve
  - id: no-receipt
    when: (amount > 50 or category == "travel") and not has_receipt and exists(region)
    then: reject
tables:
  - id: grid
    columns: [category, amount]
    rows:
      - {id: hw-mid, when: [hardware, "500..2000"], then: escalate}
      - {id: anything, when: ["-", "-"], then: approve}
"""


def _explain(text: str, raw: dict[str, Any]) -> dict[str, Any]:
    ruleset = load_ruleset_text(text)
    return explain(ruleset, validate_input(ruleset, raw))


def _rule(explanation: dict[str, Any], rule_id: str) -> dict[str, Any]:
    [found] = [r for r in explanation["rules"] if r["id"] == rule_id]
    return found


def test_a_fired_rule_names_its_parts_with_the_values_that_made_it_fire() -> None:
    out = _explain(RULES, {"amount": 1500, "days_since_purchase": 3, "has_receipt": True})
    big = _rule(out, "big-refund")
    assert big == {"id": "big-refund", "fired": True, "outcome": "escalate", "conditions": [
        {"text": "amount > thresholds.supervisor_limit", "holds": True,
         "values": {"amount": 1500, "thresholds.supervisor_limit": 1200.5}}]}
    assert out["summary"].startswith(
        "escalate because big-refund: amount 1500 > thresholds.supervisor_limit 1200.5")


def test_top_level_and_parts_in_order_each_with_what_it_reads() -> None:
    out = _explain(RULES, {"amount": 1500, "days_since_purchase": 3})
    small = _rule(out, "instant-small")
    assert small["fired"] is False
    assert small["conditions"] == [
        {"text": "amount <= thresholds.instant_limit", "holds": False,
         "values": {"amount": 1500, "thresholds.instant_limit": 75}, "missed_by": 1425},
        {"text": "days_since_purchase <= 30", "holds": True,
         "values": {"days_since_purchase": 3}}]
    receipt = _rule(out, "no-receipt")
    assert [c["text"] for c in receipt["conditions"]] == [
        'amount > 50 or category == "travel"', "not has_receipt", "exists(region)"]
    # Defaults applied; an absent field is null.
    assert receipt["conditions"][0]["values"] == {"amount": 1500, "category": "meals"}
    assert receipt["conditions"][1]["values"] == {"has_receipt": False}
    assert receipt["conditions"][2] == {"text": "exists(region)", "holds": False,
                                        "values": {"region": None}}


def test_a_table_row_has_one_part_per_cell_and_an_all_dash_row_one_true_part() -> None:
    out = _explain(RULES, {"amount": 2500, "category": "hardware"})
    row = _rule(out, "grid.hw-mid")
    assert row["conditions"] == [
        {"text": 'category == "hardware"', "holds": True, "values": {"category": "hardware"}},
        {"text": "amount >= 500 and amount <= 2000", "holds": False,
         "values": {"amount": 2500}}]
    assert _rule(out, "grid.anything")["conditions"] == [
        {"text": "true", "holds": True, "values": {}}]


def test_none_fired_the_default_decided_and_each_rules_first_failed_part_is_named() -> None:
    text = HEAD + """\
rules:
  - id: big-refund
    when: amount > thresholds.supervisor_limit
    then: escalate
  - id: instant-small
    when: days_since_purchase <= 30 and amount <= thresholds.instant_limit
    then: reject
"""
    out = _explain(text, {"amount": 900, "days_since_purchase": 3})
    assert out["summary"] == (
        "approve: no rule fired, so the default decided; "
        "big-refund failed on amount 900 > thresholds.supervisor_limit 1200.5; "
        "instant-small failed on amount 900 <= thresholds.instant_limit 75")
    assert [r["fired"] for r in out["rules"]] == [False, False]


def test_a_fallback_decision_says_the_fallback_decided() -> None:
    ruleset = load_ruleset_text(RULES)
    data = validate_input(ruleset, {"amount": 10})
    out = explain(ruleset, data, fallback_reason="timed out")
    assert out["summary"].startswith("escalate: the ruleset's fallback decided")
    assert len(out["rules"]) == len(ruleset.rules)


# --- properties --------------------------------------------------------------------------

ATOMS = ["amount > thresholds.supervisor_limit", "amount <= 75", "days_since_purchase <= 30",
         "category == \"travel\"", "category in [\"meals\", \"hardware\"]", "has_receipt",
         "exists(days_since_purchase)", "region matches \"^E\"", "region == thresholds.region",
         "amount >= 0.5", "not has_receipt", "region not in [\"US\"]"]
CELLS: dict[str, list[Any]] = {
    "category": ["-", "travel", ["meals", "hardware"], "!= travel"],
    "amount": ["-", "> 100", "<= thresholds.instant_limit", "10..thresholds.supervisor_limit", 0]}


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(ATOMS))
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(conditions(depth - 1))})"
    parts = draw(st.lists(conditions(depth - 1), min_size=2, max_size=3))
    return f" {kind} ".join(f"({p})" if draw(st.booleans()) else p for p in parts)


@st.composite
def rulesets(draw: st.DrawFn) -> str:
    whens = draw(st.lists(conditions(), min_size=1, max_size=5))
    rules = "".join(f"  - id: r{i}\n    when: '{w}'\n    then: "
                    f"{draw(st.sampled_from(['approve', 'escalate', 'reject']))}\n"
                    for i, w in enumerate(whens))
    rows = draw(st.lists(st.tuples(st.sampled_from(CELLS["category"]),
                                   st.sampled_from(CELLS["amount"]),
                                   st.sampled_from(["approve", "reject"])), max_size=4))
    table = ""
    if rows:
        table = "tables:\n  - id: t\n    columns: [category, amount]\n    rows:\n" + "".join(
            f"      - {{id: row{i}, when: {json.dumps([c, a])}, then: {o}}}\n"
            for i, (c, a, o) in enumerate(rows))
    return HEAD + "rules:\n" + rules + table


inputs = st.fixed_dictionaries(
    {"amount": st.sampled_from([0, 10, 75, 75.5, 100, 1200.5, 5000])},
    optional={"days_since_purchase": st.integers(0, 60),
              "category": st.sampled_from(["meals", "travel", "hardware"]),
              "has_receipt": st.booleans(),
              "region": st.sampled_from(["EU", "US", "", "E"])})


@settings(max_examples=60, deadline=None)
@given(rulesets(), inputs)
def test_a_rule_fired_exactly_when_all_its_parts_hold_and_as_the_evaluator_fired(
        text: str, raw: dict[str, Any]) -> None:
    ruleset = load_ruleset_text(text)
    data = validate_input(ruleset, raw)
    out = explain(ruleset, data, parts=rule_parts(ruleset))
    assert [r["id"] for r in out["rules"]] == [r.id for r in ruleset.rules]
    for rule in out["rules"]:
        assert rule["fired"] == all(c["holds"] for c in rule["conditions"])
    fired = [r["id"] for r in out["rules"] if r["fired"]]
    assert fired == ReferenceEvaluator().fired(ruleset, data)
    decided = ReferenceEvaluator().evaluate(ruleset, data)
    assert out["summary"].startswith(decided.outcome.value)
    for rule_id in decided.deciding_rules:
        assert f"{rule_id}: " in out["summary"]
