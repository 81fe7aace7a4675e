"""Decision tables in and out of spreadsheets: CSV (and XLSX through openpyxl).

A sheet has a header row ``id, <the table's columns>, then, escalate_to, reason,
description`` and one line per row. Cells are written as a business owner types them:
``-``, ``hardware``, ``500``, ``[software, travel]``, ``> 2000``, ``500..2000``,
``<= thresholds.limit``.

Importing rewrites only the rows that changed (ruamel.yaml round trip), so every comment
and the layout of the rest of the file are kept, and a sheet exported and imported
unchanged leaves the file byte for byte as it was. The new file is checked by the loader
before it is written; every bad cell is named by its sheet row and column.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from rules_service.adapters.ruleset_files import load_ruleset_file, load_ruleset_text
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Ruleset

_EXTRA = ("then", "escalate_to", "reason", "description")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class TableFileError(Exception):
    """The table or sheet cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows added, changed and removed (by row id)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        """True when the sheet matched the file and nothing was written."""
        return not (self.added or self.changed or self.removed)


def _table(definition: Mapping[str, Any], table_id: str) -> tuple[int, Mapping[str, Any]]:
    for i, table in enumerate(definition.get("tables", [])):
        if table["id"] == table_id:
            return i, table
    known = ", ".join(t["id"] for t in definition.get("tables", [])) or "none"
    raise TableFileError([Problem("tables", f"there is no table '{table_id}' (tables: {known})")])


# -- writing cells ----------------------------------------------------------------------------


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell_to_text(cell: Any) -> str:
    """A cell as it is typed in a spreadsheet."""
    if isinstance(cell, list):
        plain = all(not isinstance(v, str) or (v and v == v.strip()
                                               and not any(c in v for c in ',[]"'))
                    for v in cell)
        if plain:
            return "[" + ", ".join(_scalar_text(v) for v in cell) + "]"
        return json.dumps(cell, ensure_ascii=False)
    return _scalar_text(cell)


def export_rows(ruleset: Ruleset, table_id: str) -> list[list[str]]:
    """The sheet of a table: the header, then one line per row."""
    _, table = _table(ruleset.definition, table_id)
    out = [["id", *table["columns"], *_EXTRA]]
    for row in table["rows"]:
        line = [row["id"], *(cell_to_text(c) for c in row["when"])]
        line += ["" if row.get(k) is None else str(row[k]) for k in _EXTRA]
        out.append(line)
    return out


def export_csv(ruleset: Ruleset, table_id: str) -> str:
    """The table as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(export_rows(ruleset, table_id))
    return buffer.getvalue()


def export_xlsx(ruleset: Ruleset, table_id: str, path: str | Path) -> None:
    """The table as an XLSX workbook (one sheet named after the table)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = table_id[:31]
    for line in export_rows(ruleset, table_id):
        sheet.append(line)
    book.save(str(path))


# -- reading cells ----------------------------------------------------------------------------


def _typed(text: str, kind: str) -> Any:
    """A scalar typed for its column: numbers for number columns, true/false for booleans."""
    if kind in ("number", "integer") and _NUMBER.match(text):
        number = float(text)
        return int(number) if number.is_integer() and "e" not in text.lower() \
            and "." not in text else number
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def text_to_cell(text: str, kind: str) -> Any:
    """A spreadsheet cell back to the value the file holds, typed for the column."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            items = json.loads(text)
        except ValueError:
            items = [t.strip() for t in text[1:-1].split(",")] if text[1:-1].strip() else []
        if isinstance(items, list):
            return [_typed(i, kind) if isinstance(i, str) else i for i in items]
    return _typed(text, kind)


def read_sheet(path: str | Path) -> list[list[str]]:
    """The lines of a CSV or XLSX file as text cells."""
    p = Path(path)
    if p.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(str(p), read_only=True, data_only=True)
        lines = []
        for values in book.worksheets[0].iter_rows(values_only=True):
            lines.append(["" if v is None else _xlsx_text(v) for v in values])
        return [line for line in lines if any(c.strip() for c in line)]
    with p.open(newline="", encoding="utf-8-sig") as handle:
        return [line for line in csv.reader(handle) if any(c.strip() for c in line)]


def _xlsx_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column_kinds(definition: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    kinds = []
    for column in columns:
        node: Any = definition.get("inputs", {})
        spec: Any = {}
        for part in column.split("."):
            spec = node.get(part, {}) if isinstance(node, Mapping) else {}
            node = spec.get("properties") if isinstance(spec, Mapping) else None
        kinds.append(spec.get("type", "string") if isinstance(spec, Mapping) else "string")
    return kinds


def _sheet_rows(lines: list[list[str]], table: Mapping[str, Any],
                kinds: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows from the sheet, and the sheet line number of each; header problems raise."""
    if not lines:
        raise TableFileError([Problem("sheet", "the sheet is empty; it needs a header row")])
    header = [h.strip() for h in lines[0]]
    columns = list(table["columns"])
    expected = ["id", *columns]
    if header[:len(expected)] != expected or any(h not in _EXTRA for h in
                                                  header[len(expected):] if h):
        raise TableFileError([Problem("sheet line 1", "the header must be "
                                      f"{', '.join(expected + list(_EXTRA))} (got "
                                      f"{', '.join(header)})")])
    extra = header[len(expected):]
    rows, numbers = [], []
    for n, line in enumerate(lines[1:], start=2):
        line = line + [""] * (len(header) - len(line))
        row: dict[str, Any] = {"id": line[0].strip(),
                               "when": [text_to_cell(t, k) for t, k in
                                        zip(line[1:len(expected)], kinds, strict=True)]}
        for name, value in zip(extra, line[len(expected):], strict=False):
            if name and value.strip():
                row[name] = value.strip()
        rows.append(row)
        numbers.append(n)
    return rows, numbers


# -- importing ----------------------------------------------------------------------------------


def _norm(row: Mapping[str, Any]) -> str:
    keys = ("id", "when", *_EXTRA)
    return json.dumps({k: row.get(k) for k in keys if row.get(k) is not None}, sort_keys=True)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _norm(a) == _norm(b)


def _sequence_offset(text: str) -> int:
    """How far the file indents a list's dashes under their key (0 or 2, as written)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip()
             .startswith("#")]
    for key, item in zip(lines, lines[1:], strict=False):
        if key.rstrip().endswith(":") and item.lstrip().startswith("- "):
            return max(0, (len(item) - len(item.lstrip())) - (len(key) - len(key.lstrip())))
    return 2


def _new_row(row: Mapping[str, Any], flow: bool) -> CommentedMap:
    out = CommentedMap()
    out["id"] = row["id"]
    cells = CommentedSeq(row["when"])
    cells.fa.set_flow_style()
    out["when"] = cells
    for key in _EXTRA:
        if row.get(key) is not None:
            out[key] = row[key]
    if flow:
        out.fa.set_flow_style()
    return out


def _sheet_problem(problem: Problem, t: int, numbers: list[int], header: list[str]) -> Problem:
    """A loader problem in the table's rows, said as a sheet line and column."""
    m = re.match(rf"^tables\[{t}\]\.rows\[(\d+)\](?:\.when\[(\d+)\]|\.(\w+))?", problem.place)
    if not m:
        return problem
    line = numbers[int(m.group(1))] if int(m.group(1)) < len(numbers) else None
    column = header[int(m.group(2)) + 1] if m.group(2) is not None else (m.group(3) or "")
    where = f"sheet line {line}" + (f", column {column}" if column else "")
    return Problem(where, problem.message)


def import_table(path: str | Path, table_id: str, sheet: str | Path) -> ImportResult:
    """Replaces a table's rows with the sheet's; raises TableFileError listing every problem.

    The file is written only when the sheet differs from it and the result loads.
    """
    p = Path(path)
    ruleset = load_ruleset_file(p)
    t, table = _table(ruleset.definition, table_id)
    kinds = _column_kinds(ruleset.definition, table["columns"])
    rows, numbers = _sheet_rows(read_sheet(sheet), table, kinds)

    original = p.read_text(encoding="utf-8")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    offset = _sequence_offset(original)
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    document = yaml.load(original)
    target = next(x for x in document["tables"] if str(x["id"]).strip() == table_id)
    old_rows = {str(r["id"]).strip(): r for r in target["rows"]}
    canonical = {r["id"]: r for r in table["rows"]}
    flow = any(getattr(r, "fa", None) is not None and r.fa.flow_style() for r in target["rows"])

    new_seq: list[Any] = []
    added: list[str] = []
    changed: list[str] = []
    for row in rows:
        rid = row["id"]
        if rid in old_rows and rid in canonical and _same(canonical[rid], row):
            new_seq.append(old_rows[rid])  # untouched: its comments and layout stay
            continue
        (changed if rid in old_rows else added).append(rid)
        new_seq.append(_new_row(row, flow))
    ids = {r["id"] for r in rows}
    removed = [rid for rid in old_rows if rid not in ids]
    order_same = [r["id"] for r in rows] == list(old_rows)
    if not (added or changed or removed) and order_same:
        return ImportResult((), (), ())
    # Change the sequence in place, item by item: ruamel keeps comments by position, so the
    # comments around untouched rows stay where they were.
    seq = target["rows"]
    for i, item in enumerate(new_seq):
        if i >= len(seq):
            seq.append(item)
        elif seq[i] is not item:
            seq[i] = item
    del seq[len(new_seq):]
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    text = buffer.getvalue()
    try:
        load_ruleset_text(text, str(p))
    except RulesetInvalid as exc:
        header = ["id", *table["columns"]]
        raise TableFileError([_sheet_problem(pr, t, numbers, header)
                              for pr in exc.problems]) from None
    p.write_text(text, encoding="utf-8")
    return ImportResult(tuple(added), tuple(changed), tuple(removed))
