"""``rules-service validate`` on runbooks and review rhythms: an incomplete runbook is a
warning naming its missing parts (exit 0); an unreadable ``review_every`` is a problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rules_service.cli import main
from tests.integration.test_cli_files import EXAMPLES, EXPENSE


def _write(tmp_path: Path, change: dict[str, object], runbook_drop: tuple[str, ...] = ()
           ) -> Path:
    data = yaml.safe_load(EXPENSE.read_text(encoding="utf-8"))
    for part in runbook_drop:
        data["runbook"].pop(part)
    data.update(change)
    path = tmp_path / "expense.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_every_example_has_a_complete_runbook_and_a_review_rhythm(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *EXAMPLES]) == 0
    assert "runbook lacks" not in capsys.readouterr().out
    for path in EXAMPLES:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        assert len(data["runbook"]["restart"]) >= 3, path
        assert data["review_every"].endswith("d"), path


@pytest.mark.parametrize("missing", [("restart",), ("boundaries", "restart"),
                                     ("normal_steps", "exceptions", "rollback")])
def test_an_incomplete_runbook_is_a_warning_naming_each_missing_part(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: tuple[str, ...]) -> None:
    path = _write(tmp_path, {}, runbook_drop=missing)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"warning: the runbook lacks {', '.join(missing)}:" in out


def test_an_empty_restart_checklist_counts_as_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(EXPENSE.read_text(encoding="utf-8"))
    data["runbook"]["restart"] = []
    path = tmp_path / "expense.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    assert "the runbook lacks restart:" in capsys.readouterr().out


@pytest.mark.parametrize("value, message", [
    ("90x", "'90x' is not a duration"), ("0d", "must be longer than zero"),
    (90, "text"), ("", "review_every")])
def test_an_unreadable_review_rhythm_is_a_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object,
        message: str) -> None:
    path = _write(tmp_path, {"review_every": value})
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "review_every" in err and message in err, err
