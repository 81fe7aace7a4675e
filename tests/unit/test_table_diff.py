"""The diff reads table changes in sentences: rows added, removed and changed cell by cell."""

from __future__ import annotations

import copy

from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.domain.diff import diff_definitions
from tests.unit.test_tables import TEXT


def _definition() -> dict:
    return load_ruleset_text(TEXT).definition


def test_a_changed_range_reads_as_one_sentence() -> None:
    old = _definition()
    new = copy.deepcopy(old)
    new["tables"][0]["rows"][1]["when"][1] = "500..2500"
    assert diff_definitions(old, new).summary == [
        "limits.hw-mid: amount range 500..2000 -> 500..2500"]


def test_every_changed_cell_of_a_row_is_in_its_sentence() -> None:
    old = _definition()
    new = copy.deepcopy(old)
    new["tables"][0]["rows"][3]["when"] = [["software"], "> 10"]
    assert diff_definitions(old, new).summary == [
        "limits.sw: category in [software, travel] -> in [software]; amount > 0 -> > 10"]


def test_rows_added_removed_and_with_a_new_outcome_are_reported() -> None:
    old = _definition()
    new = copy.deepcopy(old)
    new["tables"][0]["rows"][0]["then"] = "escalate"
    new["tables"][0]["rows"][0]["escalate_to"] = "approver"
    new["tables"][0]["rows"].append({"id": "new", "when": ["travel", "> 9"], "then": "reject"})
    del new["tables"][0]["rows"][2]
    summary = diff_definitions(old, new).summary
    assert "limits.hw-small: outcome approve -> escalate" in summary
    assert "Added row limits.new (reject when category travel, amount > 9)" in summary
    assert "Removed row limits.any-big (was reject when amount > 2000)" in summary


def test_moving_a_row_is_not_a_change() -> None:
    old = _definition()
    new = copy.deepcopy(old)
    new["tables"][0]["rows"].reverse()
    assert diff_definitions(old, new).summary == []


def test_a_new_table_is_one_change_not_one_per_row() -> None:
    assert "Added table limits (columns category, amount; 4 rows)" in \
        diff_definitions(None, _definition()).summary
    assert not [s for s in diff_definitions(None, _definition()).summary
                if s.startswith("Added row")]
