"""Decision tables: each row is a rule whose condition is the ``and`` of its cells.

A row compiles to the same condition AST a rule's ``when`` parses to, so the type checker,
the engine, the reference evaluator, tests, decisions and impact replay treat rows exactly
as rules. A cell is ``-`` (any value, absent included), a literal (equality), a list
(``in``), an operator with a value or threshold (``> 5``, ``<= thresholds.limit``), or an
inclusive range ``lo..hi`` of numbers or thresholds. A value alone reads as it does after
``==``: ``"eu"`` is the text eu, ``1e3`` the number 1000.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rules_service.language.ast import (
    And,
    Compare,
    CompareOp,
    Expr,
    FieldRef,
    InList,
    Literal,
    Operand,
    ThresholdRef,
)
from rules_service.language.parser import ConditionSyntaxError, parse_condition
from rules_service.language.printer import format_condition
from rules_service.language.wording import show_cell

ANY = "-"
_OPERATOR = re.compile(r"^(==|!=|<=|>=|<|>)\s*(.+)$", re.S)
_BOUND = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|thresholds\.[A-Za-z_][A-Za-z0-9_]*)"
_RANGE = re.compile(rf"^{_BOUND}\s*\.\.\s*{_BOUND}$")
_LITERAL_TEXT = re.compile(
    r"""^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|".*"|'.*'|thresholds\..+)$""", re.S)


class CellError(ValueError):
    """A cell that cannot be read; the message says why in plain words."""


@dataclass(frozen=True)
class Cell:
    """One cell read: its kind (any, equals, in, compare, range) and its condition (or None)."""

    kind: str
    condition: Expr | None
    text: str  # as an approver reads it: "500..2000", "> 5", "[a, b]", "hardware", "-"


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_THRESHOLD = re.compile(r"^thresholds\.([A-Za-z_][A-Za-z0-9_]*)\Z")


def _operand(text: str) -> Operand:
    """A value or threshold written after an operator or as a range bound."""
    text = text.strip()
    # The common forms directly (a table of thousands of rows has tens of thousands of
    # cells); anything else goes through the condition parser.
    if _NUMBER.match(text):
        number = float(text)
        exact = int(text) if re.fullmatch(r"-?\d+", text) else number
        return Literal(exact)
    threshold = _THRESHOLD.match(text)
    if threshold:
        return ThresholdRef(threshold.group(1))
    if text in ("true", "false"):
        return Literal(text == "true")
    if not _LITERAL_TEXT.match(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'  # a bare word is text
    try:
        expr = parse_condition(text)
    except ConditionSyntaxError as exc:
        raise CellError(f"'{text}' is not a value or a threshold: {exc.message}") from None
    if not isinstance(expr, Literal | ThresholdRef):
        raise CellError(f"'{text}' is not a value or a threshold")
    return expr


def _bare_value(text: str) -> str | float:
    """A value written alone (a cell or a list item), not after an operator.

    Text in quotes means the text inside them, as after ``==``; a number with an exponent
    (``1e3``, which YAML leaves as text) is that number, as in ``== 1e3`` and ``1e3..1e4``;
    anything else is the text as written.
    """
    if text[:1] in ('"', "'"):
        try:
            expr = parse_condition(text)
        except ConditionSyntaxError:
            expr = None
        if not isinstance(expr, Literal) or not isinstance(expr.value, str):
            raise CellError(
                f"{text} is not one quoted text; write the text without quotes (eu) or in "
                'one pair of quotes ("eu"), with a backslash before a quote inside it (\\")')
        return expr.value
    if _NUMBER.match(text) and "e" in text.lower():
        return float(text)
    return text


def cell_key(cell: Any) -> Hashable | None:
    """A cell as a dictionary key, equal only for cells that read the same (``1``, ``1.0``
    and ``true`` differ); None for a cell that is no value or list."""
    if isinstance(cell, list):
        items = tuple(cell_key(item) for item in cell)
        return None if None in items else ("list", *items)
    return (type(cell), cell) if isinstance(cell, str | bool | int | float) else None


_READ: dict[tuple[str, Hashable], Cell] = {}
_READ_MOST = 65_536


def read_cell(column: str, cell: Any) -> Cell:
    """The condition a cell stands for on ``column`` (a dotted input field).

    A table repeats its cells (a category, a band) across thousands of rows: each distinct
    cell of a column is read once and its Cell (immutable) shared.
    """
    key = cell_key(cell)
    if key is None:
        return _read_cell(column, cell)
    found = _READ.get((column, key))
    if found is None:
        found = _read_cell(column, cell)
        if len(_READ) >= _READ_MOST:
            _READ.clear()
        _READ[(column, key)] = found
    return found


def _read_cell(column: str, cell: Any) -> Cell:
    ref = FieldRef(tuple(column.split(".")))
    if isinstance(cell, str):
        text = cell.strip()
        if text == ANY:
            return Cell("any", None, ANY)
        if not text:
            raise CellError("an empty cell; write - for any value")
        bounds = _RANGE.match(text)
        if bounds:
            lo, hi = _operand(bounds.group(1)), _operand(bounds.group(2))
            both = And((Compare(CompareOp.GE, ref, lo), Compare(CompareOp.LE, ref, hi)))
            return Cell("range", both, f"{bounds.group(1)}..{bounds.group(2)}")
        if ".." in text and not text.startswith(("'", '"')):
            raise CellError(f"'{text}' is not a range; write it as low..high with numbers or "
                            "thresholds, like 500..2000")
        op = _OPERATOR.match(text)
        if op:
            operand = _operand(op.group(2))
            return Cell("compare", Compare(CompareOp(op.group(1)), ref, operand),
                        f"{op.group(1)} {op.group(2).strip()}")
        if text.startswith("thresholds."):
            return Cell("equals", Compare(CompareOp.EQ, ref, _operand(text)), text)
        value = _bare_value(text)
        return Cell("equals", Compare(CompareOp.EQ, ref, Literal(value)), text)
    if isinstance(cell, bool | int | float):
        return Cell("equals", Compare(CompareOp.EQ, ref, Literal(cell)), show_cell(cell))
    if isinstance(cell, list):
        if not cell:
            raise CellError("an empty list matches nothing; list at least one value")
        items: list[Operand] = []
        for item in cell:
            if isinstance(item, str) and item.strip().startswith("thresholds."):
                items.append(_operand(item))
            elif isinstance(item, str):
                items.append(Literal(_bare_value(item.strip())))
            elif isinstance(item, bool | int | float):
                items.append(Literal(item))
            else:
                raise CellError(f"a list may hold only values, not {type(item).__name__}")
        return Cell("in", InList(ref, tuple(items)),
                    "[" + ", ".join(show_cell(i) for i in cell) + "]")
    raise CellError("a cell is -, a value, a list [a, b], an operator and a value (> 5) or a "
                    "range (500..2000)")


def row_condition(columns: Sequence[str], cells: Sequence[Any]) -> Expr:
    """The ``and`` of a row's cells (``true`` when every cell is ``-``)."""
    parts: list[Expr] = []
    for column, cell in zip(columns, cells, strict=True):
        read = read_cell(column, cell)
        if read.condition is None:
            continue
        if isinstance(read.condition, And):
            parts.extend(read.condition.operands)
        else:
            parts.append(read.condition)
    if not parts:
        return Literal(True)
    return parts[0] if len(parts) == 1 else And(tuple(parts))


@dataclass(frozen=True)
class TableRow:
    """A row as a rule: its id ``TABLE.ROW``, condition, condition text and the rule fields."""

    rule_id: str
    condition: Expr
    when: str
    body: Mapping[str, Any]


def table_rows(table: Mapping[str, Any]) -> list[TableRow]:
    """Every row of a (checked) table, as the rules they stand for."""
    columns = list(table["columns"])
    out = []
    texts: dict[int, tuple[Expr, str]] = {}  # rows share their repeated cells' conditions
    for row in table["rows"]:
        condition = row_condition(columns, row["when"])
        if isinstance(condition, And):
            when = " and ".join(_text(part, texts) for part in condition.operands)
        else:
            when = format_condition(condition)
        out.append(TableRow(f"{table['id']}.{row['id']}", condition, when, row))
    return out


def _text(part: Expr, texts: dict[int, tuple[Expr, str]]) -> str:
    """A cell's condition as text, written once however many rows share it; a part of an
    ``and`` of cells is a comparison or a list, which the printer never wraps."""
    known = texts.get(id(part))
    if known is None or known[0] is not part:
        known = (part, format_condition(part))
        texts[id(part)] = known
    return known[1]


def cell_kind_and_text(cell: Any) -> tuple[str, str] | None:
    """(kind, text) of a cell as written, or None when it cannot be read."""
    try:
        read = read_cell("x", cell)
    except CellError:
        return None
    return read.kind, read.text
