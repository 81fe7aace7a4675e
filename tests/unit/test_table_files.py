"""Tables to and from spreadsheets: a round trip leaves the file as it was, bad cells are named."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rules_service.adapters.ruleset_files import load_ruleset_file
from rules_service.adapters.table_files import (
    TableFileError,
    export_csv,
    export_xlsx,
    import_table,
)
from rules_service.cli import main
from tests.unit.test_tables import TEXT

COMMENTED = TEXT.replace("tables:", "# the grid the finance team keeps\ntables:").replace(
    "      - {id: hw-mid,", "      # the middle band\n      - {id: hw-mid,")
EXAMPLE = Path(__file__).resolve().parents[2] / "rulesets" / "purchase-limits.yaml"


def _file(tmp_path: Path, text: str = COMMENTED) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _write_csv(path: Path, lines: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(lines)
    return path


def _lines(text: str) -> list[list[str]]:
    return list(csv.reader(text.splitlines()))


def test_a_csv_round_trip_leaves_the_file_byte_for_byte_unchanged(tmp_path: Path) -> None:
    path = _file(tmp_path)
    sheet = tmp_path / "limits.csv"
    assert main(["table", "export", str(path), "limits", "--csv", "-o", str(sheet)]) == 0
    assert main(["table", "import", str(path), "limits", str(sheet)]) == 0
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_the_example_tables_round_trip_unchanged(tmp_path: Path) -> None:
    path = _file(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    before = path.read_text(encoding="utf-8")
    for table in load_ruleset_file(path).definition["tables"]:
        sheet = tmp_path / f"{table['id']}.csv"
        sheet.write_text(export_csv(load_ruleset_file(path), table["id"]), encoding="utf-8")
        assert import_table(path, table["id"], sheet).unchanged
    assert path.read_text(encoding="utf-8") == before


def test_the_sheet_has_one_line_per_row_with_cells_as_typed(tmp_path: Path) -> None:
    lines = _lines(export_csv(load_ruleset_file(_file(tmp_path)), "limits"))
    assert lines[0] == ["id", "category", "amount", "then", "escalate_to", "reason",
                        "description"]
    assert lines[2] == ["hw-mid", "hardware", "500..2000", "escalate", "approver", "", ""]
    assert lines[4][:3] == ["sw", "[software, travel]", "> 0"]


def test_an_edited_sheet_changes_only_its_rows_and_keeps_the_comments(tmp_path: Path) -> None:
    path = _file(tmp_path)
    lines = _lines(export_csv(load_ruleset_file(path), "limits"))
    lines[2][2] = "500..2500"
    lines.append(["new", "travel", "> 9", "reject", "", "", ""])
    result = import_table(path, "limits", _write_csv(tmp_path / "s.csv", lines))
    assert (result.added, result.changed, result.removed) == (("new",), ("hw-mid",), ())
    text = path.read_text(encoding="utf-8")
    assert "# the grid the finance team keeps" in text and "# the middle band" in text
    ruleset = load_ruleset_file(path)
    assert ruleset.rule("limits.hw-mid").when == \
        'category == "hardware" and amount >= 500 and amount <= 2500'
    assert ruleset.rule("limits.new").then.value == "reject"


def test_every_bad_cell_is_named_by_sheet_line_and_column_and_nothing_is_written(
        tmp_path: Path) -> None:
    path = _file(tmp_path)
    lines = _lines(export_csv(load_ruleset_file(path), "limits"))
    lines[1][2] = "> abc"
    lines[3][2] = "9..x"
    lines[4][3] = "maybe"
    with pytest.raises(TableFileError) as info:
        import_table(path, "limits", _write_csv(tmp_path / "s.csv", lines))
    places = [p.place for p in info.value.problems]
    assert places == ["sheet line 2, column amount", "sheet line 4, column amount",
                      "sheet line 5, column then"]
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_a_sheet_with_the_wrong_header_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path)
    sheet = _write_csv(tmp_path / "s.csv", [["id", "amount", "category", "then"]])
    assert main(["table", "import", str(path), "limits", str(sheet)]) == 1


def test_an_xlsx_round_trip_leaves_the_file_unchanged(tmp_path: Path) -> None:
    path = _file(tmp_path)
    book = tmp_path / "limits.xlsx"
    export_xlsx(load_ruleset_file(path), "limits", book)
    assert import_table(path, "limits", book).unchanged
    assert path.read_text(encoding="utf-8") == COMMENTED
