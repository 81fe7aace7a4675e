"""The kinds of change between two versions of a ruleset, each with its plain sentence.

Every change is reported at the level a business owner thinks in (a rule's condition, a
threshold, one input attribute, a table row), and its ``sentence`` is what an approver
reads before signing off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from rules_service.domain.tables import cell_kind_and_text

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


def merged_keys(*mappings: Any) -> list[str]:
    """The keys of all the mappings (non-mappings count as empty), first seen first."""
    seen: dict[str, None] = {}
    for m in mappings:
        if isinstance(m, Mapping):
            seen.update(dict.fromkeys(m))
    return list(seen)


def canonical_text(value: Any) -> str:
    """A value's canonical JSON, for strict comparison."""
    # Strict equality: 1, 1.0 and true are different values in a policy file.
    return json.dumps(value, sort_keys=True, default=repr)


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
    for column in merged_keys(b, a):
        if canonical_text(b.get(column)) == canonical_text(a.get(column)):
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
