"""Computing the diff: DeepDiff finds what differs, and its findings are grouped here.

Each finding is mapped to the unit a business owner thinks in (a rule, a threshold, one
input attribute, a table row), each unit is reported once, and its before/after values are
read from the two definitions into the changes of ``changes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepdiff import DeepDiff

from rules_service.domain.diff.changes import (
    Change,
    DefaultChanged,
    FallbackChanged,
    InputAdded,
    InputChanged,
    InputRemoved,
    MetadataChanged,
    OwnersChanged,
    RowAdded,
    RowChanged,
    RowRemoved,
    RuleAdded,
    RuleChanged,
    RuleRemoved,
    RulesetDiff,
    RunbookChanged,
    SignoffChanged,
    TableChanged,
    TestsChanged,
    ThresholdAdded,
    ThresholdChanged,
    ThresholdRemoved,
    canonical_text,
    merged_keys,
)
from rules_service.domain.table_analysis import analyze_tables

# An absent key reads as None: for an approver "not set" and "null" are the same thing.
_ABSENT: Any = None

_SECTIONS_AS_MAPPINGS = ("rules", "thresholds", "inputs", "owners", "tests", "runbook", "impact")
_METADATA_KEYS = ("name", "title", "description")
_OWNER_SLOTS = ("primary", "backup")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- preparing


def _keyed(items: Any, key: str) -> dict[str, Any]:
    """A list of dicts as a mapping by ``key``; a repeated key gets a ``#n`` suffix."""
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for index, item in enumerate(items):
        if isinstance(item, Mapping) and isinstance(item.get(key), str):
            base = item[key]
            body = {k: v for k, v in item.items() if k != key}
        else:
            base, body = f"[{index}]", item
        name, n = base, 2
        while name in out:
            name, n = f"{base}#{n}", n + 1
        out[name] = body
    return out


def _flatten_inputs(inputs: Any, prefix: str = "", out: dict[str, Any] | None = None,
                    ) -> dict[str, Any]:
    """Inputs as ``{"trip.nights": {attributes}}``, nested ``properties`` lifted out."""
    out = {} if out is None else out
    if not isinstance(inputs, Mapping):
        return out
    for name, spec in inputs.items():
        path = f"{prefix}{name}"
        if isinstance(spec, Mapping):
            out[path] = {k: v for k, v in spec.items() if k != "properties"}
            _flatten_inputs(spec.get("properties"), f"{path}.", out)
        else:
            out[path] = spec
    return out


def _prepare_tables(tables: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tables by id (columns, description, row count) and rows by ``TABLE.ROW`` with their
    cells by column, so a changed cell is one change however the row list moved."""
    out_tables: dict[str, Any] = {}
    out_rows: dict[str, Any] = {}
    for table_id, table in _keyed(tables, "id").items():
        if not isinstance(table, Mapping):
            continue
        columns = [str(c) for c in table.get("columns", [])] \
            if isinstance(table.get("columns"), list) else []
        raw_rows = table.get("rows")
        rows: list[Any] = raw_rows if isinstance(raw_rows, list) else []
        out_tables[table_id] = {"columns": columns, "rows": len(rows),
                                **({"description": table["description"]}
                                   if "description" in table else {})}
        for row_id, row in _keyed(rows, "id").items():
            if not isinstance(row, Mapping):
                continue
            raw_cells = row.get("when")
            cells: list[Any] = raw_cells if isinstance(raw_cells, list) else []
            body = {k: v for k, v in row.items() if k != "when"}
            body["cells"] = dict(zip(columns, cells, strict=False))
            out_rows[f"{table_id}.{row_id}"] = body
    return out_tables, out_rows


def _prepare(definition: Mapping[str, Any] | None) -> dict[str, Any]:
    """The definition in the shape the diff compares: lists with identities become mappings."""
    d = dict(definition or {})
    prepared: dict[str, Any] = {}
    for key, value in d.items():
        if key == "tables":
            prepared["tables"], prepared["rows"] = _prepare_tables(value)
        elif key == "rules":
            prepared[key] = _keyed(value, "id")
        elif key == "tests":
            prepared[key] = _keyed(value, "name")
        elif key == "inputs":
            prepared[key] = _flatten_inputs(value)
        else:
            prepared[key] = value
    for key in (*_SECTIONS_AS_MAPPINGS, "tables", "rows"):
        if not isinstance(prepared.get(key), Mapping):
            # Absent (first version) or malformed: compare against nothing, not crash.
            prepared[key] = {} if prepared.get(key) is None else {"(value)": prepared[key]}
    return prepared


def _ignore_order(level: Any) -> bool:
    # Sign-off is a set of roles and enum a set of values; a reordering is not a change.
    path = level.path(output_format="list")
    return path == ["signoff"] or (len(path) == 3 and path[0] == "inputs" and path[2] == "enum")


# --------------------------------------------------------------------------- units

# A unit is the level at which one change is reported, e.g. ("rule", "small-expense", "when").
Unit = tuple[str, ...]


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key, _ABSENT) if isinstance(mapping, Mapping) else _ABSENT


def _rule_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    if not rest:
        return [("rule", r) for r in merged_keys(o, n)]
    rule_id = rest[0]
    if len(rest) == 1:
        ro, rn = _get(o, rule_id), _get(n, rule_id)
        if isinstance(ro, Mapping) and isinstance(rn, Mapping):
            return [("rule", rule_id, f) for f in merged_keys(ro, rn)]
        return [("rule", rule_id)]
    return [("rule", rule_id, rest[1])]


def _table_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    if not rest:
        return [("table", t) for t in merged_keys(o, n)]
    to, tn = _get(o, rest[0]), _get(n, rest[0])
    if not isinstance(to, Mapping) or not isinstance(tn, Mapping):
        return [("table", rest[0])]
    attrs = [rest[1]] if len(rest) > 1 else merged_keys(to, tn)
    return [("table", rest[0], a) for a in attrs if a != "rows"]


def _row_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    if not rest:
        return [("row", r) for r in merged_keys(o, n)]
    ro, rn = _get(o, rest[0]), _get(n, rest[0])
    if len(rest) == 1:
        if isinstance(ro, Mapping) and isinstance(rn, Mapping):
            return [("row", rest[0], f) for f in merged_keys(ro, rn)]
        return [("row", rest[0])]
    return [("row", rest[0], rest[1])]


def _threshold_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    return [("threshold", t) for t in (merged_keys(o, n) if not rest else [rest[0]])]


def _input_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    if not rest:
        return [("input", i) for i in merged_keys(o, n)]
    io, inew = _get(o, rest[0]), _get(n, rest[0])
    if len(rest) == 1:
        if isinstance(io, Mapping) and isinstance(inew, Mapping):
            return [("input", rest[0], a) for a in merged_keys(io, inew)]
        return [("input", rest[0])]
    return [("input", rest[0], rest[1])]


def _owner_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    roles = merged_keys(o, n) if not rest else [rest[0]]
    if len(rest) >= 2:
        return [("owner", rest[0], rest[1])]
    return [("owner", role, slot) for role in roles
            for slot in merged_keys(_get(o, role), _get(n, role)) or list(_OWNER_SLOTS)]


def _runbook_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    sections = merged_keys(o, n) if not rest else [rest[0]]
    units: list[Unit] = []
    for section in sections:
        so, sn = _get(o, section), _get(n, section)
        if section == "escalation" and isinstance(so, Mapping) and isinstance(sn, Mapping):
            subs = merged_keys(so, sn) if len(rest) < 2 else [rest[1]]
            units.extend(("runbook", f"escalation.{s}") for s in subs)
        else:
            units.append(("runbook", section))
    return units


def _impact_units(rest: list[str], o: Any, n: Any) -> list[Unit]:
    return [("metadata", f"impact.{k}") for k in (merged_keys(o, n) if not rest else [rest[0]])]


_UNITS_OF_SECTION = {
    "rules": _rule_units, "tables": _table_units, "rows": _row_units,
    "thresholds": _threshold_units, "inputs": _input_units, "owners": _owner_units,
    "runbook": _runbook_units, "impact": _impact_units,
}


def _units_for(path: list[Any], old: dict[str, Any], new: dict[str, Any]) -> list[Unit]:
    """The report units a DeepDiff path touches (a coarse path expands to its children)."""
    top = str(path[0])
    rest = [str(p) for p in path[1:]]
    if top in _UNITS_OF_SECTION:
        return _UNITS_OF_SECTION[top](rest, old.get(top), new.get(top))
    if top == "tests":
        return [("tests",)]
    if top in ("signoff", "default", "fallback"):
        return [(top,)]
    return [("metadata", top)]


def _read(prepared: dict[str, Any], unit: Unit) -> Any:
    """The value a unit has in one (prepared) definition; None when absent."""
    kind = unit[0]
    if kind == "rule":
        value = _get(prepared["rules"], unit[1])
        return value if len(unit) == 2 else _get(value, unit[2])
    if kind in ("row", "table"):
        value = _get(prepared["rows" if kind == "row" else "tables"], unit[1])
        return value if len(unit) == 2 else _get(value, unit[2])
    if kind == "threshold":
        return _get(prepared["thresholds"], unit[1])
    if kind == "input":
        value = _get(prepared["inputs"], unit[1])
        return value if len(unit) == 2 else _get(value, unit[2])
    if kind == "owner":
        return _get(_get(prepared["owners"], unit[1]), unit[2])
    if kind == "runbook":
        section, _, sub = unit[1].partition(".")
        value = _get(prepared["runbook"], section)
        return _get(value, sub) if sub else value
    if kind == "metadata":
        top, _, sub = unit[1].partition(".")
        if top == "impact" and sub:
            return _get(prepared["impact"], sub)
        return prepared.get(top)
    return prepared.get(kind)


def _input_spec(definition: Mapping[str, Any] | None, dotted: str) -> Any:
    """The full (nested) spec of an input field, as written in the definition."""
    node: Any = (definition or {}).get("inputs")
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            return None
        spec = node[part]
        if i == len(parts) - 1:
            return spec
        node = spec.get("properties") if isinstance(spec, Mapping) else None
    return None


# --------------------------------------------------------------------------- building


_ORDER = {"rule": 0, "table": 0.5, "row": 0.6, "threshold": 1, "input": 2, "default": 3,
          "fallback": 4, "owner": 5, "signoff": 6, "tests": 7, "runbook": 8, "metadata": 9}


def _position(unit: Unit, old: dict[str, Any], new: dict[str, Any]) -> tuple[Any, ...]:
    # Sections in reading order; within one, the new file's order, then what was removed.
    if unit[0] == "metadata":
        top = unit[1].partition(".")[0]
        known = (*_METADATA_KEYS, "impact")
        return (_ORDER["metadata"], known.index(top) if top in known else len(known), 0, unit)
    section = {"rule": "rules", "table": "tables", "row": "rows",
               "threshold": "thresholds", "input": "inputs",
               "owner": "owners", "runbook": "runbook"}.get(unit[0])
    if section is None or len(unit) < 2:
        return (_ORDER.get(unit[0], 99), 0, 0, unit)
    key = unit[1].partition(".")[0] if section == "runbook" else unit[1]
    first = _index(key, new[section], old[section])
    second = 0
    if len(unit) > 2:
        if section == "owners":
            second = _OWNER_SLOTS.index(unit[2]) if unit[2] in _OWNER_SLOTS else 2
        else:
            second = _index(unit[2], _get(new[section], key), _get(old[section], key))
    return (_ORDER[unit[0]], first, second, unit)


def _index(key: str, *mappings: Any) -> int:
    order = merged_keys(*mappings)
    return order.index(key) if key in order else len(order)


def _rule_or_table_change(unit: Unit, before: Any, after: Any) -> Change | None:
    kind = unit[0]
    if kind == "rule" and len(unit) == 2:
        if before is None:
            body = after if isinstance(after, Mapping) else {}
            return RuleAdded(unit[1], body.get("when"), body.get("then"), {"id": unit[1], **body})
        body = before if isinstance(before, Mapping) else {}
        return RuleRemoved(unit[1], body.get("when"), body.get("then"), {"id": unit[1], **body})
    if kind == "rule":
        return RuleChanged(unit[1], unit[2], before, after)
    if kind == "table" and len(unit) == 2:
        return TableChanged(unit[1], "added" if before is None else "removed", before, after)
    if kind == "table":
        return TableChanged(unit[1], unit[2], before, after)
    if len(unit) == 2:
        if before is None:
            return RowAdded(unit[1], dict(after) if isinstance(after, Mapping) else {})
        return RowRemoved(unit[1], dict(before) if isinstance(before, Mapping) else {})
    if unit[2] == "cells" and canonical_text(before) == canonical_text(after):
        return None
    return RowChanged(unit[1], unit[2], before, after)


def _threshold_change(name: str, before: Any, after: Any) -> Change:
    if before is None:
        return ThresholdAdded(name, None, after)
    if after is None:
        return ThresholdRemoved(name, before, None)
    direction = None
    if _is_number(before) and _is_number(after) and before != after:
        direction = "up" if after > before else "down"
    return ThresholdChanged(name, before, after, direction)


def _tests_change(bt: dict[str, Any], at: dict[str, Any]) -> Change | None:
    added = tuple(t for t in at if t not in bt)
    removed = tuple(t for t in bt if t not in at)
    changed = tuple(t for t in at if t in bt and canonical_text(bt[t]) != canonical_text(at[t]))
    if not (added or removed or changed):
        return None
    return TestsChanged(added, removed, changed)


def _build(unit: Unit, old: dict[str, Any], new: dict[str, Any],
           raw_old: Mapping[str, Any] | None, raw_new: Mapping[str, Any]) -> Change | None:
    before, after = _read(old, unit), _read(new, unit)
    kind = unit[0]
    if kind in ("rule", "table", "row"):
        return _rule_or_table_change(unit, before, after)
    if kind == "threshold":
        return _threshold_change(unit[1], before, after)
    if kind == "input" and len(unit) == 2:
        if before is None:
            return InputAdded(unit[1], None, None, _input_spec(raw_new, unit[1]))
        return InputRemoved(unit[1], None, _input_spec(raw_old, unit[1]), None)
    if kind == "input":
        return InputChanged(unit[1], unit[2], before, after)
    if kind == "owner":
        return OwnersChanged(unit[1], unit[2], before, after)
    if kind == "signoff":
        b = list(before) if isinstance(before, list) else []
        a = list(after) if isinstance(after, list) else []
        return SignoffChanged(before, after, tuple(r for r in a if r not in b),
                              tuple(r for r in b if r not in a))
    if kind == "default":
        return DefaultChanged(before, after)
    if kind == "fallback":
        return FallbackChanged(before, after)
    if kind == "runbook":
        return RunbookChanged(unit[1], before, after)
    if kind == "tests":
        return _tests_change(old["tests"], new["tests"])
    return MetadataChanged(unit[1], before, after)


def _drop_nested_inputs(units: set[Unit], old: dict[str, Any], new: dict[str, Any]) -> None:
    """A nested field added or removed with its parent is reported inside the parent's change."""
    whole = {u[1] for u in units if u[0] == "input" and len(u) == 2}
    for unit in list(units):
        if unit[0] != "input" or len(unit) != 2:
            continue
        parts = unit[1].split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            same_side = (parent not in old["inputs"]) == (unit[1] not in old["inputs"])
            if parent in whole and same_side:
                units.discard(unit)
                break


def _drop_rows_of_whole_tables(units: set[Unit], old: dict[str, Any],
                               new: dict[str, Any]) -> None:
    """The rows of a table added or removed as a whole are counted in the table's change."""
    whole = {u[1] for u in units if u[0] == "table" and len(u) == 2}
    for unit in list(units):
        if unit[0] == "row" and unit[1].split(".", 1)[0] in whole:
            units.discard(unit)


def _strict_equal(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (``1``, ``1.0`` and ``true`` differ)."""
    # == is fast and settles most differences; the JSON text tells 1, 1.0 and true apart.
    return bool(a == b) and canonical_text(a) == canonical_text(b)


def _prune(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both mappings without the entries they share unchanged, recursively.

    DeepDiff walks every node it is given; most of a revision is unchanged, so handing it
    only what differs makes a diff of two real definitions an order of magnitude faster.
    """
    pruned_old: dict[str, Any] = {}
    pruned_new: dict[str, Any] = {}
    for key, value in old.items():
        if key not in new:
            pruned_old[key] = value
            continue
        other = new[key]
        if _strict_equal(value, other):
            continue
        if isinstance(value, dict) and isinstance(other, dict):
            pruned_old[key], pruned_new[key] = _prune(value, other)
        else:
            pruned_old[key], pruned_new[key] = value, other
    for key, value in new.items():
        if key not in old:
            pruned_new[key] = value
    return pruned_old, pruned_new


def diff_definitions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> RulesetDiff:
    """The changes from ``old`` to ``new`` (``old=None``: a first version, all is added)."""
    prepared_old, prepared_new = _prepare(old), _prepare(new)
    pruned_old, pruned_new = _prune(prepared_old, prepared_new)
    warnings = tuple(str(w) for w in analyze_tables(new)) if new.get("tables") else ()
    if not pruned_old and not pruned_new:
        return RulesetDiff((), warnings)
    found = DeepDiff(pruned_old, pruned_new, view="tree", threshold_to_diff_deeper=0,
                     ignore_order_func=_ignore_order)
    units: set[Unit] = set()
    for levels in found.values():
        for level in levels:
            path = level.path(output_format="list")
            if path:
                units.update(_units_for(path, prepared_old, prepared_new))
    _drop_nested_inputs(units, prepared_old, prepared_new)
    _drop_rows_of_whole_tables(units, prepared_old, prepared_new)
    changes = []
    for unit in sorted(units, key=lambda u: _position(u, prepared_old, prepared_new)):
        change = _build(unit, prepared_old, prepared_new, old, new)
        if change is not None:
            changes.append(change)
    return RulesetDiff(tuple(changes), warnings)
