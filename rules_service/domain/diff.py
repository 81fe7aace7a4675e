"""What changed between two versions of a ruleset, as typed changes and plain sentences.

The diff is what an approver reads before signing off, so every change is reported once, at
the level a business owner thinks in (a rule's condition, a threshold, one input attribute),
and each carries one plain sentence. DeepDiff finds what differs; this module groups its
findings into those units and reads the before/after values from the two definitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from deepdiff import DeepDiff

from rules_service.domain.table_analysis import analyze_tables
from rules_service.domain.tables import cell_kind_and_text

# An absent key reads as None: for an approver "not set" and "null" are the same thing.
_ABSENT: Any = None

_SECTIONS_AS_MAPPINGS = ("rules", "thresholds", "inputs", "owners", "tests", "runbook", "impact")
_METADATA_KEYS = ("name", "title", "description")
_OWNER_SLOTS = ("primary", "backup")
_RULE_FIELD_NAMES = {
    "when": "condition",
    "then": "outcome",
    "reason": "reason",
    "description": "description",
    "escalate_to": "escalation role",
}


# --------------------------------------------------------------------------- formatting


def _value(value: Any) -> str:
    """A literal as an approver would write it: strings quoted, numbers and lists plain."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _name(value: Any) -> str:
    """An identifier (role, principal, outcome) written bare."""
    return "none" if value is None else str(value)


def _names(values: Iterable[Any]) -> str:
    items = [str(v) for v in values]
    return ", ".join(items) if items else "none"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- change types


@dataclass(frozen=True)
class Change:
    """One change between two versions; subclasses carry the details of their kind."""

    kind: ClassVar[str] = "change"

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the kind, the change's fields and its sentence."""
        data: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            data[f.name] = _jsonable(getattr(self, f.name))
        data["summary"] = self.sentence()
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RuleAdded(Change):
    """A rule that only the new version has."""

    kind: ClassVar[str] = "rule_added"
    rule_id: str
    when: Any
    then: Any
    rule: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Added rule {self.rule_id} ({_name(self.then)} when {_name(self.when)})"


@dataclass(frozen=True)
class RuleRemoved(Change):
    """A rule that only the old version has."""

    kind: ClassVar[str] = "rule_removed"
    rule_id: str
    when: Any
    then: Any
    rule: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Removed rule {self.rule_id} (was: {_name(self.then)} when {_name(self.when)})"


@dataclass(frozen=True)
class RuleChanged(Change):
    """One field of a rule that both versions have."""

    kind: ClassVar[str] = "rule_changed"
    rule_id: str
    field: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        prefix = f"Rule {self.rule_id}"
        label = _RULE_FIELD_NAMES.get(self.field, self.field)
        if self.field == "when":
            if self.before is None:
                return f"{prefix}: condition set to `{self.after}`"
            if self.after is None:
                return f"{prefix}: condition removed (was `{self.before}`)"
            return f"{prefix}: condition changed from `{self.before}` to `{self.after}`"
        fmt = _name if self.field in ("then", "escalate_to") else _value
        if self.before is None:
            return f"{prefix}: {label} set to {fmt(self.after)}"
        if self.after is None:
            return f"{prefix}: {label} removed (was {fmt(self.before)})"
        return f"{prefix}: {label} changed from {fmt(self.before)} to {fmt(self.after)}"


@dataclass(frozen=True)
class ThresholdAdded(Change):
    """A threshold that only the new version has."""

    kind: ClassVar[str] = "threshold_added"
    name: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Added threshold {self.name} = {_value(self.after)}"


@dataclass(frozen=True)
class ThresholdRemoved(Change):
    """A threshold that only the old version has."""

    kind: ClassVar[str] = "threshold_removed"
    name: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Removed threshold {self.name} (was {_value(self.before)})"


@dataclass(frozen=True)
class ThresholdChanged(Change):
    """A threshold whose value changed; ``direction`` is up/down when both are numbers."""

    kind: ClassVar[str] = "threshold_changed"
    name: str
    before: Any
    after: Any
    direction: str | None = None

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        span = f"from {_value(self.before)} to {_value(self.after)}"
        if self.direction == "up":
            return f"Raised {self.name} {span}"
        if self.direction == "down":
            return f"Lowered {self.name} {span}"
        return f"Changed threshold {self.name} {span}"


def _input_summary(spec: Mapping[str, Any]) -> str:
    parts = [str(spec.get("type", "untyped")), "required" if spec.get("required") else "optional"]
    children = spec.get("properties")
    if isinstance(children, Mapping) and children:
        parts.append("with " + ", ".join(str(k) for k in children))
    return ", ".join(parts)


@dataclass(frozen=True)
class InputAdded(Change):
    """An input field that only the new version has (nested fields included in ``after``)."""

    kind: ClassVar[str] = "input_added"
    field: str
    attribute: str | None
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        spec = self.after if isinstance(self.after, Mapping) else {}
        return f"Added input field {self.field} ({_input_summary(spec)})"


@dataclass(frozen=True)
class InputRemoved(Change):
    """An input field that only the old version has."""

    kind: ClassVar[str] = "input_removed"
    field: str
    attribute: str | None
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        spec = self.before if isinstance(self.before, Mapping) else {}
        return f"Removed input field {self.field} (was {_input_summary(spec)})"


@dataclass(frozen=True)
class InputChanged(Change):
    """One attribute (type, required, enum, minimum...) of an input field both versions have."""

    kind: ClassVar[str] = "input_changed"
    field: str
    attribute: str | None
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        prefix = f"Input {self.field}"
        attr, before, after = self.attribute, self.before, self.after
        if attr == "required":
            return f"{prefix} is now required" if after else f"{prefix} is no longer required"
        if attr == "enum":
            return f"{prefix}: {self._enum_sentence()}"
        if attr == "type":
            return f"{prefix}: type changed from {_name(before)} to {_name(after)}"
        if before is None:
            return f"{prefix}: {attr} set to {_value(after)}"
        if after is None:
            return f"{prefix}: {attr} removed (was {_value(before)})"
        return f"{prefix}: {attr} changed from {_value(before)} to {_value(after)}"

    def _enum_sentence(self) -> str:
        if self.before is None:
            return f"values restricted to {_value(self.after)}"
        if self.after is None:
            return f"any value allowed (was restricted to {_value(self.before)})"
        before, after = list(self.before), list(self.after)
        gained = [v for v in after if v not in before]
        lost = [v for v in before if v not in after]
        parts = []
        if gained:
            parts.append("now also allows " + ", ".join(_value(v) for v in gained))
        if lost:
            parts.append("no longer allows " + ", ".join(_value(v) for v in lost))
        if not parts:
            # Same values, different type or multiplicity: say so rather than nothing.
            return f"allowed values changed from {_value(before)} to {_value(after)}"
        return "; ".join(parts)


@dataclass(frozen=True)
class OwnersChanged(Change):
    """The primary or backup holder of one role changed."""

    kind: ClassVar[str] = "owners_changed"
    role: str
    slot: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.before is None:
            return f"Set {self.role} {self.slot} to {_name(self.after)}"
        if self.after is None:
            return f"Removed {self.role} {self.slot} {_name(self.before)}"
        return (f"Changed {self.role} {self.slot} from {_name(self.before)} "
                f"to {_name(self.after)}")


@dataclass(frozen=True)
class SignoffChanged(Change):
    """The set of roles that must each sign off a change."""

    kind: ClassVar[str] = "signoff_changed"
    before: Any
    after: Any
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.before is None:
            return f"Sign-off required from {_names(self.after or ())}"
        if self.after is None:
            return f"Sign-off roles removed (were {_names(self.before)})"
        parts = []
        if self.added:
            parts.append(f"now also requires {_names(self.added)}")
        if self.removed:
            parts.append(f"no longer requires {_names(self.removed)}")
        if not parts:
            return (f"Sign-off roles changed from {_names(self.before)} "
                    f"to {_names(self.after)}")
        return "Sign-off " + " and ".join(parts)


@dataclass(frozen=True)
class DefaultChanged(Change):
    """The outcome when no rule fires."""

    kind: ClassVar[str] = "default_changed"
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.before is None:
            return f"Default outcome (no rule fired) set to {_name(self.after)}"
        return (f"Changed the default outcome (no rule fired) from {_name(self.before)} "
                f"to {_name(self.after)}")


@dataclass(frozen=True)
class FallbackChanged(Change):
    """The outcome when the engine cannot decide."""

    kind: ClassVar[str] = "fallback_changed"
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.before is None:
            return f"Fallback outcome (engine cannot decide) set to {_name(self.after)}"
        return (f"Changed the fallback outcome (engine cannot decide) from "
                f"{_name(self.before)} to {_name(self.after)}")


@dataclass(frozen=True)
class RunbookChanged(Change):
    """One section of the runbook (escalation is split into its parts)."""

    kind: ClassVar[str] = "runbook_changed"
    section: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        label = self.section.replace("_", " ").replace(".", " ")
        if self.before is None:
            return f"Added runbook {label}"
        if self.after is None:
            return f"Removed runbook {label}"
        before, after = self.before, self.after
        if isinstance(before, list) and isinstance(after, list):
            gained = _multiset_minus(after, before)
            lost = _multiset_minus(before, after)
            if not gained and not lost:
                return f"Reordered runbook {label}"
            return (f"Changed runbook {label}: {len(gained)} "
                    f"{'entry' if len(gained) == 1 else 'entries'} added, {len(lost)} removed")
        if isinstance(before, str) and isinstance(after, str) and (
                len(before) > 60 or len(after) > 60):
            return f"Rewrote runbook {label}"
        return f"Changed runbook {label} from {_value(before)} to {_value(after)}"


def _multiset_minus(a: list[Any], b: list[Any]) -> list[Any]:
    rest = list(b)
    out = []
    for item in a:
        if item in rest:
            rest.remove(item)
        else:
            out.append(item)
    return out


@dataclass(frozen=True)
class TestsChanged(Change):
    """The embedded tests: which were added, removed or changed (by name)."""

    __test__ = False  # not a pytest test class, whatever its name
    kind: ClassVar[str] = "tests_changed"
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        parts = []
        for verb, names in (("added", self.added), ("removed", self.removed),
                            ("changed", self.changed)):
            if names:
                parts.append(f"{verb} {', '.join(_value(n) for n in names)}")
        return "Tests: " + "; ".join(parts)


@dataclass(frozen=True)
class MetadataChanged(Change):
    """Name, title, description, impact figures and any other top-level entry."""

    kind: ClassVar[str] = "metadata_changed"
    field: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        label = self.field.replace(".", " ")
        if self.before is None:
            return f"Set {label} to {_value(self.after)}"
        if self.after is None:
            return f"Removed {label} (was {_value(self.before)})"
        return f"Changed {label} from {_value(self.before)} to {_value(self.after)}"


def _cell_phrase(cell: Any) -> str:
    """A cell as an approver reads it: ``range 500..2000``, ``> 5``, ``in [a, b]``, ``any``."""
    read = cell_kind_and_text(cell)
    if read is None:
        return _value(cell)
    kind, text = read
    return {"any": "any", "range": f"range {text}", "in": f"in {text}"}.get(kind, text)


def _cells_sentence(before: Any, after: Any) -> str:
    b = before if isinstance(before, Mapping) else {}
    a = after if isinstance(after, Mapping) else {}
    parts = []
    for column in _keys(b, a):
        if _canonical(b.get(column)) == _canonical(a.get(column)):
            continue
        pb = _cell_phrase(b[column]) if column in b else "(no column)"
        pa = _cell_phrase(a[column]) if column in a else "(no column)"
        if pb.startswith("range ") and pa.startswith("range "):
            pa = pa[len("range "):]
        parts.append(f"{column} {pb} -> {pa}")
    return "; ".join(parts) or "cells unchanged"


def _row_summary(body: Mapping[str, Any]) -> str:
    raw = body.get("cells")
    cells: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    tested = [f"{c} {_cell_phrase(v)}" for c, v in cells.items()
              if _cell_phrase(v) != "any"]
    return f"{_name(body.get('then'))} when {', '.join(tested) or 'always'}"


@dataclass(frozen=True)
class RowAdded(Change):
    """A decision-table row that only the new version has."""

    kind: ClassVar[str] = "row_added"
    row_id: str
    row: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Added row {self.row_id} ({_row_summary(self.row)})"


@dataclass(frozen=True)
class RowRemoved(Change):
    """A decision-table row that only the old version has."""

    kind: ClassVar[str] = "row_removed"
    row_id: str
    row: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        return f"Removed row {self.row_id} (was {_row_summary(self.row)})"


@dataclass(frozen=True)
class RowChanged(Change):
    """One part of a row changed: its cells (all changed cells in one sentence) or a field."""

    kind: ClassVar[str] = "row_changed"
    row_id: str
    field: str
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.field == "cells":
            return f"{self.row_id}: {_cells_sentence(self.before, self.after)}"
        label = _RULE_FIELD_NAMES.get(self.field, self.field)
        show = _name if self.field in ("then", "escalate_to") else _value
        return f"{self.row_id}: {label} {show(self.before)} -> {show(self.after)}"


@dataclass(frozen=True)
class TableChanged(Change):
    """A decision table added, removed, or its columns or description changed."""

    kind: ClassVar[str] = "table_changed"
    table_id: str
    field: str  # "added" | "removed" | "columns" | "description"
    before: Any
    after: Any

    def sentence(self) -> str:
        """One plain sentence describing the change."""
        if self.field in ("added", "removed"):
            table = self.after if self.field == "added" else self.before
            rows = table.get("rows", 0) if isinstance(table, Mapping) else 0
            columns = _names(table.get("columns", [])) if isinstance(table, Mapping) else "none"
            verb = "Added" if self.field == "added" else "Removed"
            return f"{verb} table {self.table_id} (columns {columns}; {rows:,} rows)"
        return f"Table {self.table_id}: {self.field} {_value(self.before)} -> {_value(self.after)}"


@dataclass(frozen=True)
class RulesetDiff:
    """Every change from one version to the next, in the order an approver reads them."""

    changes: tuple[Change, ...]
    # Findings on the new version's decision tables (rows that never fire, overlaps, gaps):
    # for the approver to weigh, never blocking.
    warnings: tuple[str, ...] = ()

    @property
    def summary(self) -> list[str]:
        """One sentence per change."""
        return [c.sentence() for c in self.changes]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of_kind(self, kind: str) -> list[Change]:
        """The changes of one kind (``rule_changed``...)."""
        return [c for c in self.changes if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"changes": [...], "summary": [...]}``, and ``warnings`` if any."""
        out: dict[str, Any] = {"changes": [c.to_dict() for c in self.changes],
                               "summary": self.summary}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


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


def _keys(*mappings: Any) -> list[str]:
    seen: dict[str, None] = {}
    for m in mappings:
        if isinstance(m, Mapping):
            seen.update(dict.fromkeys(m))
    return list(seen)


def _units_for(path: list[Any], old: dict[str, Any], new: dict[str, Any]) -> list[Unit]:
    """The report units a DeepDiff path touches (a coarse path expands to its children)."""
    top = str(path[0])
    rest = [str(p) for p in path[1:]]
    o, n = old.get(top), new.get(top)
    if top == "rules":
        if not rest:
            return [("rule", r) for r in _keys(o, n)]
        rule_id = rest[0]
        if len(rest) == 1:
            ro, rn = _get(o, rule_id), _get(n, rule_id)
            if isinstance(ro, Mapping) and isinstance(rn, Mapping):
                return [("rule", rule_id, f) for f in _keys(ro, rn)]
            return [("rule", rule_id)]
        return [("rule", rule_id, rest[1])]
    if top == "tables":
        if not rest:
            return [("table", t) for t in _keys(o, n)]
        to, tn = _get(o, rest[0]), _get(n, rest[0])
        if not isinstance(to, Mapping) or not isinstance(tn, Mapping):
            return [("table", rest[0])]
        attrs = [rest[1]] if len(rest) > 1 else _keys(to, tn)
        return [("table", rest[0], a) for a in attrs if a != "rows"]
    if top == "rows":
        if not rest:
            return [("row", r) for r in _keys(o, n)]
        ro, rn = _get(o, rest[0]), _get(n, rest[0])
        if len(rest) == 1:
            if isinstance(ro, Mapping) and isinstance(rn, Mapping):
                return [("row", rest[0], f) for f in _keys(ro, rn)]
            return [("row", rest[0])]
        return [("row", rest[0], rest[1])]
    if top == "thresholds":
        return [("threshold", t) for t in (_keys(o, n) if not rest else [rest[0]])]
    if top == "inputs":
        if not rest:
            return [("input", i) for i in _keys(o, n)]
        io, inew = _get(o, rest[0]), _get(n, rest[0])
        if len(rest) == 1:
            if isinstance(io, Mapping) and isinstance(inew, Mapping):
                return [("input", rest[0], a) for a in _keys(io, inew)]
            return [("input", rest[0])]
        return [("input", rest[0], rest[1])]
    if top == "owners":
        roles = _keys(o, n) if not rest else [rest[0]]
        if len(rest) >= 2:
            return [("owner", rest[0], rest[1])]
        return [("owner", role, slot) for role in roles
                for slot in _keys(_get(o, role), _get(n, role)) or list(_OWNER_SLOTS)]
    if top == "tests":
        return [("tests",)]
    if top == "runbook":
        sections = _keys(o, n) if not rest else [rest[0]]
        units: list[Unit] = []
        for section in sections:
            so, sn = _get(o, section), _get(n, section)
            if section == "escalation" and isinstance(so, Mapping) and isinstance(sn, Mapping):
                subs = _keys(so, sn) if len(rest) < 2 else [rest[1]]
                units.extend(("runbook", f"escalation.{s}") for s in subs)
            else:
                units.append(("runbook", section))
        return units
    if top == "impact":
        return [("metadata", f"impact.{k}") for k in (_keys(o, n) if not rest else [rest[0]])]
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
    order = _keys(*mappings)
    return order.index(key) if key in order else len(order)


def _build(unit: Unit, old: dict[str, Any], new: dict[str, Any],
           raw_old: Mapping[str, Any] | None, raw_new: Mapping[str, Any]) -> Change | None:
    before, after = _read(old, unit), _read(new, unit)
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
    if kind == "row" and len(unit) == 2:
        if before is None:
            return RowAdded(unit[1], dict(after) if isinstance(after, Mapping) else {})
        return RowRemoved(unit[1], dict(before) if isinstance(before, Mapping) else {})
    if kind == "row":
        if unit[2] == "cells" and _canonical(before) == _canonical(after):
            return None
        return RowChanged(unit[1], unit[2], before, after)
    if kind == "threshold":
        if before is None:
            return ThresholdAdded(unit[1], None, after)
        if after is None:
            return ThresholdRemoved(unit[1], before, None)
        direction = None
        if _is_number(before) and _is_number(after) and before != after:
            direction = "up" if after > before else "down"
        return ThresholdChanged(unit[1], before, after, direction)
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
        bt, at = old["tests"], new["tests"]
        added = tuple(t for t in at if t not in bt)
        removed = tuple(t for t in bt if t not in at)
        changed = tuple(t for t in at if t in bt and _canonical(bt[t]) != _canonical(at[t]))
        if not (added or removed or changed):
            return None
        return TestsChanged(added, removed, changed)
    return MetadataChanged(unit[1], before, after)


def _canonical(value: Any) -> str:
    # Strict equality: 1, 1.0 and true are different values in a policy file.
    return json.dumps(value, sort_keys=True, default=repr)


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
    return bool(a == b) and _canonical(a) == _canonical(b)


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
