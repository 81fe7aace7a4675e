"""The file commands of the CLI (validate, test, evaluate, diff): exit codes and every problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules_service.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXPENSE = ROOT / "rulesets" / "expense-approval.yaml"
EXAMPLES = sorted(str(p) for p in (ROOT / "rulesets").glob("*.yaml"))

BROKEN = """\
name: broken
title: Broken
owners:
  business_owner: {primary: a, backup: b}
  operations_owner: {primary: c, backup: d}
  approver: {primary: e, backup: f}
  maintainer: {primary: g, backup: h}
signoff: [approver, cfo]
inputs:
  amount: {type: number, required: true}
  category: {type: string, enum: [travel, meals]}
rules:
  - id: r1
    when: amount > thresholds.limit
    then: approve
  - id: r1
    when: category > 5
    then: maybe
default: escalate
fallback: escalate
runbook:
  purpose: p
  escalation: {path: [e], response_time_target: 4h}
"""


def test_validate_accepts_every_example_ruleset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *EXAMPLES]) == 0
    assert capsys.readouterr().out.count(": ok (") == len(EXAMPLES)


def test_validate_lists_every_problem_with_place_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(BROKEN)
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    for expected in ("signoff[1] (line 8", "'cfo' is not a role",
                     "rules[0].when (line 14", "unknown threshold",
                     "rules[1].id (line 16", "already used",
                     "rules[1].when (line 17", "rules[1].then (line 18", "'maybe'"):
        assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("change, expected", [
    (lambda text: text.replace("title: Broken", "title: Broken\u000b"),
     "(line 2, column 14): the file holds U+000B"),
    (lambda text: text.replace("amount > thresholds.limit", "not " * 1000 + "amount > 1"),
     "rules[0].when (line 14"),
])
def test_validate_lists_unreadable_characters_and_deep_nesting_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: str) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(change(BROKEN), encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err


def test_validate_reports_a_missing_file_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read the file" in err and "Traceback" not in err


def test_test_runs_every_example_on_the_engine_and_passes(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", *EXAMPLES]) == 0
    out = capsys.readouterr().out
    assert " 0 failed" in out and "FAIL" not in out


def test_test_fails_when_an_expectation_is_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(EXPENSE.read_text())
    data["tests"][0]["expect"]["outcome"] = "reject"
    changed = tmp_path / "expense-approval.yaml"
    changed.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["test", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "FAIL " + data["tests"][0]["name"] in out
    assert "expected outcome reject, got approve" in out


def test_evaluate_prints_a_decision_naming_every_fired_rule(
        capsys: pytest.CaptureFixture[str]) -> None:
    raw = {"amount": 80, "category": "meals"}
    assert main(["evaluate", str(EXPENSE), "--input", json.dumps(raw)]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["outcome"] == "reject"
    assert {r["id"] for r in decision["fired_rules"]} == {"receipt-required", "small-expense"}
    assert decision["deciding_rules"] == ["receipt-required"]
    assert decision["fallback"] is False


def test_evaluate_names_every_bad_input_field(capsys: pytest.CaptureFixture[str]) -> None:
    raw = {"amount": "lots", "category": "yachts", "colour": "red"}
    assert main(["evaluate", str(EXPENSE), "--input", json.dumps(raw)]) == 1
    err = capsys.readouterr().err
    for place in ("input.amount", "input.category", "input.colour"):
        assert place in err


def test_evaluate_refuses_input_that_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(EXPENSE), "--input", "{amount: 5"]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_diff_of_two_files_reports_the_threshold_change_in_a_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(EXPENSE.read_text())
    data["thresholds"]["auto_approve_limit"] = 750
    data["rules"].reverse()
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["diff", str(EXPENSE), str(new)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"] == ["Raised auto_approve_limit from 500 to 750"]
    assert [c["kind"] for c in result["changes"]] == ["threshold_changed"]
