"""Table analysis for the approver: rows that never fire, overlaps, shadowed rows and gaps.

Warnings only; nothing here blocks a version. Exact within its bounds: every cell compares
one column with constants, so each column's values fall into finitely many classes (each
constant, a value between two neighbouring constants, one below and one above them all,
each enum value, one "other" text, absent for an optional field without a default). A row
is a box of classes, one set per column; two rows overlap when their boxes meet in every
column. Every overlap is found and counted (through per-class row sets, not a pass over
all pairs); a row is tested for being shadowed against at most MAX_CONTAINMENT_CHECKS
earlier rows it meets with its outcome, and at most MAX_LISTED findings of each kind are
listed (the rest are counted).
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules_service.domain.tables import Cell, CellError, read_cell
from rules_service.language.ast import And, Compare, Expr, InList, Literal, ThresholdRef
from rules_service.language.evaluator import evaluate
from rules_service.language.wording import show_json

MAX_CONTAINMENT_CHECKS = 200
MAX_LISTED = 20
_ABSENT = object()


@dataclass(frozen=True)
class TableWarning:
    """One finding: its kind, its place (``tables[0].rows[3]``) and a plain sentence."""

    kind: str  # never_fires | shadowed | overlap | gap | bounded
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


def _field_spec(inputs: Mapping[str, Any], column: str) -> Mapping[str, Any] | None:
    node: Any = inputs
    spec: Any = None
    for part in column.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        spec = node[part]
        node = spec.get("properties") if isinstance(spec, Mapping) else None
    return spec if isinstance(spec, Mapping) else None


def _constants(expr: Expr | None, thresholds: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    if expr is None:
        return out
    nodes: list[Any] = [expr]
    while nodes:
        node = nodes.pop()
        if isinstance(node, Literal):
            out.append(node.value)
        elif isinstance(node, ThresholdRef):
            out.append(thresholds.get(node.name))
        elif isinstance(node, Compare):
            nodes.extend((node.left, node.right))
        elif isinstance(node, InList):
            nodes.extend(node.items)
        elif hasattr(node, "operands"):
            nodes.extend(node.operands)
    return out


def _classes(spec: Mapping[str, Any], constants: list[Any]) -> list[Any]:
    """Representative values, one per class of values the column's cells cannot tell apart."""
    kind = spec.get("type")
    values: list[Any]
    if isinstance(spec.get("enum"), list):
        values = list(spec["enum"])
    elif kind == "boolean":
        values = [True, False]
    elif kind in ("number", "integer"):
        numbers = sorted({c for c in constants
                          if isinstance(c, int | float) and not isinstance(c, bool)})
        lo, hi = spec.get("minimum"), spec.get("maximum")
        points: list[Any] = []
        if numbers:
            points.append(numbers[0] - 1)
            for a, b in zip(numbers, numbers[1:], strict=False):
                points.append(a)
                mid = (a + b) / 2 if kind == "number" else a + 1
                if a < mid < b:
                    points.append(int(mid) if kind == "integer" else mid)
            points.append(numbers[-1])
            points.append(numbers[-1] + 1)
        else:
            points.append(lo if isinstance(lo, int | float) else 0)
        values = [p for p in points if (not isinstance(lo, int | float) or p >= lo)
                  and (not isinstance(hi, int | float) or p <= hi)]
    else:
        texts = sorted({c for c in constants if isinstance(c, str)})
        other = "(other)"
        while other in texts:
            other += "_"
        values = [*texts, other]
    if not spec.get("required") and "default" not in spec:
        values.append(_ABSENT)
    return values


def _sorted_numbers(values: list[Any]) -> list[Any] | None:
    """The classes' numbers when they are ascending numbers (absent last), else None."""
    numbers = [v for v in values if v is not _ABSENT]
    if not numbers or any(isinstance(v, bool) or not isinstance(v, int | float)
                          for v in numbers):
        return None
    return numbers if all(a < b for a, b in zip(numbers, numbers[1:], strict=False)) else None


def _bits(lo: int, hi: int) -> int:
    """Bits lo .. hi-1."""
    return ((1 << hi) - 1) ^ ((1 << lo) - 1) if hi > lo else 0


def _fast_mask(condition: Expr | None, numbers: list[Any] | None,
               thresholds: Mapping[str, Any]) -> int | None:
    """The classes a numeric cell accepts, by bisection; None when it is not that simple."""
    if condition is None or numbers is None:
        return None

    def value(node: Any) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ThresholdRef):
            return thresholds.get(node.name)
        return None

    def one(node: Any) -> int | None:
        if not isinstance(node, Compare) or not isinstance(node.right, Literal | ThresholdRef):
            return None
        c = value(node.right)
        if isinstance(c, bool) or not isinstance(c, int | float):
            return None
        n = len(numbers)
        lo, hi = bisect_left(numbers, c), bisect_right(numbers, c)
        op = node.op.value
        return {"==": _bits(lo, hi), "!=": _bits(0, n) & ~_bits(lo, hi), "<": _bits(0, lo),
                "<=": _bits(0, hi), ">": _bits(hi, n), ">=": _bits(lo, n)}[op]

    if isinstance(condition, And):
        parts = [one(c) for c in condition.operands]
        if any(p is None for p in parts):
            return None
        mask = _bits(0, len(numbers))
        for p in parts:
            mask &= p  # type: ignore[operator]
        return mask
    return one(condition)


def _nested(column: str, value: Any) -> dict[str, Any]:
    parts = column.split(".")
    data: dict[str, Any] = {} if value is _ABSENT else {parts[-1]: value}
    for part in reversed(parts[:-1]):
        data = {part: data}
    return data


def _example(columns: list[str], classes: list[list[Any]], masks: list[int]) -> str:
    parts = []
    for column, values, mask in zip(columns, classes, masks, strict=True):
        index = (mask & -mask).bit_length() - 1
        value = values[index]
        if value is not _ABSENT:
            parts.append(f"{json.dumps(column)}: {show_json(value)}")
    return "{" + ", ".join(parts) + "}"


def _describe_missing(values: list[Any], missing: int) -> str:
    shown = ["absent" if v is _ABSENT else show_json(v)
             for i, v in enumerate(values) if missing >> i & 1]
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")


def analyze_tables(definition: Mapping[str, Any]) -> list[TableWarning]:
    """Warnings for every table of a loaded (valid) definition."""
    inputs = definition.get("inputs") or {}
    thresholds = definition.get("thresholds") or {}
    warnings: list[TableWarning] = []
    for t, table in enumerate(definition.get("tables") or []):
        warnings.extend(_analyze(t, table, inputs, thresholds))
    return warnings


@dataclass(frozen=True)
class _Grid:
    """A table read for analysis: each column's value classes, and for each row and column
    the classes its cell accepts (``masks[r][k]``: bit i set when row r's cell in column k
    accepts class i)."""

    t: int
    tid: str
    columns: list[str]
    rows: list[Any]
    specs: list[Mapping[str, Any]]
    reads: list[list[Cell]]
    classes: list[list[Any]]
    masks: list[list[int]]

    def place(self, r: int) -> str:
        return f"tables[{self.t}].rows[{r}]"


def _cell_mask(cell: Cell, column: str, classes: list[Any], sorted_numbers: Any,
               thresholds: Mapping[str, Any]) -> int:
    fast = _fast_mask(cell.condition, sorted_numbers, thresholds)
    if fast is not None:
        return fast
    mask = 0
    for i, value in enumerate(classes):
        if cell.condition is None or evaluate(cell.condition, _nested(column, value),
                                              thresholds):
            mask |= 1 << i
    return mask


def _grid(t: int, table: Mapping[str, Any], inputs: Mapping[str, Any],
          thresholds: Mapping[str, Any]) -> _Grid | None:
    columns = [str(c) for c in table["columns"]]
    rows = list(table["rows"])
    specs = [_field_spec(inputs, c) or {} for c in columns]
    try:
        reads = [[read_cell(c, cell) for c, cell in zip(columns, row["when"], strict=True)]
                 for row in rows]
    except (CellError, ValueError):
        return None  # a table that does not load is reported by the loader, not here
    classes = []
    for k, spec in enumerate(specs):
        constants = [v for r in reads for v in _constants(r[k].condition, thresholds)]
        classes.append(_classes(spec, constants))
    sorted_numbers = [_sorted_numbers(values) for values in classes]
    masks = [[_cell_mask(cell, columns[k], classes[k], sorted_numbers[k], thresholds)
              for k, cell in enumerate(row_reads)] for row_reads in reads]
    return _Grid(t, table["id"], columns, rows, specs, reads, classes, masks)


def _never_fires(g: _Grid, found: list[TableWarning]) -> set[int]:
    """Rows with a cell no value can meet, warned about; their numbers."""
    dead: set[int] = set()
    for r, row_masks in enumerate(g.masks):
        empty = [k for k, m in enumerate(row_masks) if m == 0]
        if empty:
            dead.add(r)
            cells = ", ".join(f"{g.columns[k]} {g.reads[r][k].text}" for k in empty)
            found.append(TableWarning(
                "never_fires", g.place(r), f"{g.tid}.{g.rows[r]['id']} can never fire: no "
                                           f"value of {cells} is possible"))
    return dead


def _accepting(g: _Grid, dead: set[int]) -> list[list[int]]:
    """accepting[k][i]: the rows (a bit set over row numbers) whose cell in column k accepts
    class i. The rows meeting row j in every column are the AND over columns of the rows
    accepting any class row j accepts: no pass over all pairs of rows."""
    accepting = [[0] * len(g.classes[k]) for k in range(len(g.columns))]
    for r, row_masks in enumerate(g.masks):
        if r in dead:
            continue
        for k, mask in enumerate(row_masks):
            while mask:
                i = (mask & -mask).bit_length() - 1
                accepting[k][i] |= 1 << r
                mask &= mask - 1
    return accepting


def _meeting(g: _Grid, j: int, live: int, accepting: list[list[int]]) -> int:
    """The other live rows that some input meets together with row j (a bit set)."""
    meets = live & ~(1 << j)
    for k, mask in enumerate(g.masks[j]):
        column = 0
        while mask and meets:
            i = (mask & -mask).bit_length() - 1
            column |= accepting[k][i]
            mask &= mask - 1
        meets &= column
    return meets


def _shadowed(g: _Grid, j: int, same: int) -> TableWarning | None:
    """Row j when an earlier row of the same outcome (in ``same``) matches all it does."""
    rows, tid = g.rows, g.tid
    checked = 0
    while same and checked < MAX_CONTAINMENT_CHECKS:
        i = (same & -same).bit_length() - 1
        same &= same - 1
        checked += 1
        if all(b & ~a == 0 for a, b in zip(g.masks[i], g.masks[j], strict=True)):
            return TableWarning(
                "shadowed", g.place(j),
                f"{tid}.{rows[j]['id']} never changes a decision: every input it "
                f"matches, the earlier row {tid}.{rows[i]['id']} matches too, with the "
                f"same outcome ({rows[j]['then']})")
    return None


def _overlaps(g: _Grid, dead: set[int], found: dict[str, list[TableWarning]]) -> int:
    """Adds shadowed rows and overlapping pairs of outcomes to ``found``; returns how many
    overlapping pairs there are in all (only the first ones are listed)."""
    rows, tid = g.rows, g.tid
    live = sum(1 << r for r in range(len(rows)) if r not in dead)
    accepting = _accepting(g, dead)
    by_outcome: dict[str, int] = {}
    for r, row in enumerate(rows):
        by_outcome[row["then"]] = by_outcome.get(row["then"], 0) | (1 << r)
    overlaps_counted = 0
    for j in range(len(rows)):
        if j in dead:
            continue
        meets = _meeting(g, j, live, accepting)
        if not meets:
            continue
        earlier = meets & ((1 << j) - 1)
        shadowed = _shadowed(g, j, earlier & by_outcome[rows[j]["then"]])
        if shadowed is not None:
            found["shadowed"].append(shadowed)
        other = earlier & ~by_outcome[rows[j]["then"]]
        overlaps_counted += other.bit_count()
        while other and len(found["overlap"]) < MAX_LISTED:
            i = (other & -other).bit_length() - 1
            other &= other - 1
            both = [a & b for a, b in zip(g.masks[i], g.masks[j], strict=True)]
            found["overlap"].append(TableWarning(
                "overlap", g.place(j),
                f"{tid}.{rows[i]['id']} ({rows[i]['then']}) and {tid}.{rows[j]['id']} "
                f"({rows[j]['then']}) both fire for some inputs, e.g. "
                f"{_example(g.columns, g.classes, both)}; the more severe outcome decides"))
    return overlaps_counted


def _gaps(g: _Grid, dead: set[int]) -> list[TableWarning]:
    """Values of a closed column (enum, number, boolean) that no live row covers."""
    out = []
    for k, spec in enumerate(g.specs):
        if not (isinstance(spec.get("enum"), list)
                or spec.get("type") in ("number", "integer", "boolean")):
            continue
        covered = 0
        for r, row_masks in enumerate(g.masks):
            if r not in dead:
                covered |= row_masks[k]
        missing = ((1 << len(g.classes[k])) - 1) & ~covered
        if missing:
            out.append(TableWarning(
                "gap", f"tables[{g.t}].columns[{k}]",
                f"no row of {g.tid} covers {g.columns[k]} = "
                f"{_describe_missing(g.classes[k], missing)};"
                " such inputs get the outcome of the other rules or the default"))
    return out


def _analyze(t: int, table: Mapping[str, Any], inputs: Mapping[str, Any],
             thresholds: Mapping[str, Any]) -> list[TableWarning]:
    g = _grid(t, table, inputs, thresholds)
    if g is None:
        return []
    found: dict[str, list[TableWarning]] = {"never_fires": [], "shadowed": [], "overlap": []}
    dead = _never_fires(g, found["never_fires"])
    extra_overlaps = _overlaps(g, dead, found) - len(found["overlap"])
    out: list[TableWarning] = []
    for kind in ("never_fires", "shadowed", "overlap"):
        items = found[kind]
        out.extend(items[:MAX_LISTED])
        more = len(items) - MAX_LISTED if kind != "overlap" else extra_overlaps
        if more > 0:
            out.append(TableWarning(kind, f"tables[{t}]",
                                    f"and {more:,} more like these in {g.tid}"))
    return out + _gaps(g, dead)
