"""Loads ruleset files (YAML or JSON) into validated Rulesets, listing every problem at once.

Structure is checked by the marshmallow schemas in ``ruleset_schema``; meaning (conditions,
roles, defaults, tests) here. Places (``rules[2].when``) are mapped to lines and columns
by walking the composed YAML nodes, so a business owner sees where each problem is.
Only PyYAML's safe loader is used; nothing in a file is ever executed.
"""

from __future__ import annotations

import bisect
import copy
import difflib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rules_service.adapters.ruleset_schema import describe, load_structure
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.inputs import check_values
from rules_service.domain.lookalikes import allowed_values_problems
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import (
    ROLES,
    FieldType,
    InputField,
    Outcome,
    RoleHolders,
    Rule,
    Ruleset,
    RuleTest,
)
from rules_service.domain.tables import CellError, read_cell, table_rows
from rules_service.engine.compiler import MAX_RULES, EngineCompileError, compile_ruleset
from rules_service.language.ast import Expr, FieldRef, ThresholdRef
from rules_service.language.parser import ConditionSyntaxError, parse_condition
from rules_service.language.patterns import regex_problem
from rules_service.language.typecheck import check_condition, field_paths

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_CHARS = 2_000_000
"""Larger files are refused before parsing: a policy file is never this big."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMERIC = (FieldType.NUMBER, FieldType.INTEGER)
_TYPE_WORDS = {
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "a whole number",
    FieldType.STRING: "text",
    FieldType.BOOLEAN: "true/false",
    FieldType.OBJECT: "a group of fields",
}


# -- reading the text ---------------------------------------------------------------------


@dataclass
class _Source:
    """The parsed text and where each place is in it."""

    text: str
    nodes: dict[str, tuple[yaml.Node | None, yaml.Node]]
    line_starts: list[int]

    def position(self, index: int) -> tuple[int, int]:
        """1-based (line, column) of a character index."""
        line = bisect.bisect_right(self.line_starts, index) - 1
        return line + 1, index - self.line_starts[line] + 1


def _join(place: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{place}[{key}]"
    return f"{place}.{key}" if place else str(key)


def _parent(place: str) -> str:
    if place.endswith("]"):
        return place[: place.rindex("[")]
    return place.rsplit(".", 1)[0] if "." in place else ""


def _mark(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _walk(node: yaml.Node, place: str, key: yaml.Node | None, seen: set[int],
          nodes: dict[str, tuple[yaml.Node | None, yaml.Node]], problems: list[Problem]) -> None:
    if id(node) in seen:
        # PyYAML hands out the anchored node itself for an alias.
        problems.append(Problem(place, "anchors and aliases (& and *) are not supported in "
                                       "ruleset files; write the value out",
                                *_mark((key or node).start_mark)))
        return
    seen.add(id(node))
    nodes[place] = (key, node)
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                problems.append(Problem(place, "merge keys (<<) are not supported in ruleset "
                                               "files; write the settings out",
                                        *_mark(k.start_mark)))
                continue
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            child = _join(place, name)
            if name in first_line:
                problems.append(Problem(child, f"'{name}' is written twice here (first on line "
                                               f"{first_line[name]}); only the last one would "
                                               "count, so remove one",
                                        *_mark(k.start_mark)))
            else:
                first_line[name] = k.start_mark.line + 1
            _walk(v, child, k, seen, nodes, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{place}[{i}]", None, seen, nodes, problems)


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index of ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _character_problem(text: str, index: int) -> Problem:
    char = text[index]
    kind = {"Cc": "a control character", "Cs": "half of a surrogate pair"}.get(
        unicodedata.category(char), "a character YAML does not allow")
    return Problem("", f"the file holds U+{ord(char):04X} ({kind}), which ruleset files "
                       "cannot contain; remove it", *_position(text, index))


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError) and 0 <= exc.position < len(text):
        return _character_problem(text, exc.position)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    detail = getattr(exc, "problem", None) or str(exc)
    hint = ""
    if "mapping values are not allowed" in detail:
        hint = " (a ':' followed by a space inside a value? put the value in quotes)"
    elif "'\\t'" in detail or "tab" in detail:
        hint = " (indent with spaces, not tabs)"
    elif "could not determine a constructor" in detail:
        hint = " (tags such as !!python are not allowed)"
    line, column = _mark(mark) if mark is not None else (None, None)
    return Problem("", f"the file is not valid YAML: {detail}{hint}", line, column)


def _compose(text: str) -> tuple[Any, _Source | None, list[Problem]]:
    """(data, source map, problems) of YAML text."""
    # libyaml's parser (when PyYAML was built with it) is ~10x faster on files of thousands of
    # rules and gives the same nodes and marks.
    try:
        # PyYAML's reader refuses control characters as the loader is made.
        loader = _LOADER(text)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(exc, text)]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None, [Problem("", "the file is empty")]
        nodes: dict[str, tuple[yaml.Node | None, yaml.Node]] = {}
        problems: list[Problem] = []
        _walk(node, "", None, set(), nodes, problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(exc, text)]
    except RecursionError:
        return None, None, [Problem("", "the file is nested too deeply")]
    finally:
        loader.dispose()
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return data, _Source(text, nodes, starts), problems


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a ruleset can use")


def _json(text: str) -> tuple[Any, list[Problem]]:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                duplicates.append(k)
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, [Problem("", f"the file is not valid JSON: {exc.msg}", exc.lineno,
                              exc.colno)]
    except ValueError as exc:
        return None, [Problem("", f"the file is not valid JSON: {exc}")]
    except RecursionError:
        return None, [Problem("", "the file is nested too deeply")]
    return data, [Problem("", f"the key '{k}' is written twice in one object; only the last "
                              "one would count, so remove one") for k in duplicates]


def _read(text: str, source: str) -> tuple[Any, _Source | None, list[Problem]]:
    """(data, source map, problems): JSON when it looks like JSON, else YAML."""
    named_json = source.lower().endswith(".json")
    if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[") or named_json:
        data, problems = _json(text)
        if data is not None:
            # PyYAML reads JSON too: its nodes give places their lines and duplicates theirs.
            _, ysource, yproblems = _compose(text)
            if ysource is None:
                return data, None, problems
            return data, ysource, [p for p in problems if "written twice" not in p.message] \
                + yproblems
        if named_json:
            return None, None, problems
        # Perhaps a YAML flow mapping such as {name: x, ...}; if not, the JSON error is the
        # one that helps.
        ydata, ysource, yproblems = _compose(text)
        return (ydata, ysource, yproblems) if ydata is not None else (None, None, problems)
    return _compose(text)


# -- meaning ------------------------------------------------------------------------------


@dataclass
class _Found:
    """A problem found in the data; ``at`` is a (line, column) inside the value, if known."""

    place: str
    message: str
    at: tuple[int, int] | None = None


class _Checker:
    """Semantic checks over the raw data, skipping parts whose structure is broken."""

    def __init__(self, data: Mapping[str, Any], structure: list[Problem]):
        self.data = data
        self.bad = [p.place for p in structure]
        self.found: list[_Found] = []
        self.fields: dict[str, InputField] = {}
        self.untyped_fields: set[tuple[str, ...]] = set()
        self.inputs_ok = True
        self.thresholds: dict[str, Any] = {}
        self.thresholds_ok = True
        self.untyped_thresholds: set[str] = set()
        self.too_large = False
        self.parsed: dict[str, Expr] = {}
        """Each condition text parsed here, so building the ruleset parses none again."""

    def clean(self, place: str) -> bool:
        """No structure problem at, under or above this place."""
        for b in self.bad:
            if b == "" or b == place:
                return False
            if b.startswith((place + ".", place + "[")):
                return False
            if place.startswith((b + ".", b + "[")):
                return False
        return True

    def add(self, place: str, message: str, at: tuple[int, int] | None = None) -> None:
        self.found.append(_Found(place, message, at))

    def run(self) -> list[_Found]:
        self.owners()
        self.signoff()
        self.inputs()
        self.thresholds_()
        rule_ids, ids_complete = self.rules()
        self.tables(rule_ids)
        self.tests(rule_ids, ids_complete)
        return self.found

    # owners and signoff

    def owners(self) -> None:
        owners = self.data.get("owners")
        if not isinstance(owners, Mapping):
            return
        for role in ROLES:
            holders = owners.get(role)
            if not self.clean(f"owners.{role}") or not isinstance(holders, Mapping):
                continue
            primary, backup = holders.get("primary"), holders.get("backup")
            if isinstance(primary, str) and isinstance(backup, str) \
                    and primary.strip() == backup.strip():
                self.add(f"owners.{role}.backup",
                         f"{primary.strip()} is both primary and backup of {role}; the backup "
                         "must be someone else, who can act when the primary is away")

    def signoff(self) -> None:
        signoff = self.data.get("signoff")
        if not isinstance(signoff, list) or not self.clean("signoff"):
            return
        seen: set[str] = set()
        for i, role in enumerate(signoff):
            if role in seen:
                self.add(f"signoff[{i}]", f"{role} is listed twice")
            seen.add(role)

    # inputs

    def inputs(self) -> None:
        inputs = self.data.get("inputs", {})
        if not isinstance(inputs, Mapping) or not self.clean_own("inputs"):
            self.inputs_ok = False
            return
        for name, spec in inputs.items():
            field = self.input_field(str(name), spec, f"inputs.{name}", (str(name),))
            if field is not None:
                self.fields[str(name)] = field

    def clean_own(self, place: str) -> bool:
        """No structure problem at this place itself or above it (below is allowed)."""
        return all(b != "" and b != place and not place.startswith((b + ".", b + "["))
                   for b in self.bad)

    def input_field(self, name: str, spec: Any, place: str,
                    path: tuple[str, ...]) -> InputField | None:
        """Checks one field's meaning; returns it when it is entirely usable."""
        if not isinstance(spec, Mapping) or not self.clean_own(place):
            self.untyped_fields.add(path)
            return None
        if not self.clean(f"{place}.type"):
            self.untyped_fields.add(path)
            return None
        ftype = FieldType(spec["type"].strip())
        whole = self.clean(place)
        before = len(self.found)

        if "properties" in spec and spec["properties"] is not None:
            if ftype is not FieldType.OBJECT:
                self.add(f"{place}.properties", "only object fields have properties")
        elif ftype is FieldType.OBJECT:
            self.add(place, "an object field needs properties: the fields inside it")
        for key in ("minimum", "maximum"):
            if spec.get(key) is not None and ftype not in _NUMERIC:
                self.add(f"{place}.{key}", f"{key} applies only to number and integer fields, "
                                           f"and {name} is {_TYPE_WORDS[ftype]}")
        if spec.get("pattern") is not None and self.clean(f"{place}.pattern"):
            if ftype is not FieldType.STRING:
                self.add(f"{place}.pattern", f"a pattern applies only to text fields, and {name}"
                                             f" is {_TYPE_WORDS[ftype]}")
            else:
                problem = regex_problem(spec["pattern"].strip())
                if problem:
                    self.add(f"{place}.pattern", problem)
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        if self.clean(f"{place}.minimum") and self.clean(f"{place}.maximum") \
                and isinstance(minimum, int | float) and isinstance(maximum, int | float) \
                and minimum > maximum:
            self.add(f"{place}.minimum", f"the minimum ({minimum:g}) is larger than the maximum "
                                         f"({maximum:g})")
        enum = spec.get("enum")
        if enum is not None and self.clean(f"{place}.enum") and isinstance(enum, list):
            self.enum(name, ftype, enum, spec, place)

        nested: list[InputField] = []
        if ftype is FieldType.OBJECT and isinstance(spec.get("properties"), Mapping):
            for sub_name, sub_spec in spec["properties"].items():
                sub = self.input_field(str(sub_name), sub_spec,
                                       f"{place}.properties.{sub_name}", (*path, str(sub_name)))
                if sub is not None:
                    nested.append(sub)

        required = spec.get("required") is True
        has_default = spec.get("default") is not None
        field = InputField(
            name=name, type=ftype, required=required,
            enum=tuple(enum) if isinstance(enum, list) and self.clean(f"{place}.enum") else None,
            minimum=minimum if isinstance(minimum, int | float)
            and self.clean(f"{place}.minimum") else None,
            maximum=maximum if isinstance(maximum, int | float)
            and self.clean(f"{place}.maximum") else None,
            pattern=spec["pattern"].strip() if isinstance(spec.get("pattern"), str) else None,
            properties=tuple(nested))
        if has_default:
            self.default(field, spec["default"], required, place)
        if not whole or len(self.found) > before:
            # Usable for type checking conditions, but the ruleset will not load anyway.
            return field if self.clean(f"{place}.type") else None
        return field

    def enum(self, name: str, ftype: FieldType, enum: list[Any], spec: Mapping[str, Any],
             place: str) -> None:
        if ftype is FieldType.OBJECT:
            self.add(f"{place}.enum", "an object field cannot have allowed values (enum)")
            return
        if not enum:
            self.add(f"{place}.enum", "list at least one allowed value")
            return
        probe = InputField(name=name, type=ftype)
        seen: list[Any] = []
        for i, value in enumerate(enum):
            here = f"{place}.enum[{i}]"
            _, problems = check_values((probe,), {name: value}, "v")
            if problems or value is None:
                hint = ""
                if isinstance(value, bool) and ftype is FieldType.STRING:
                    hint = " (YAML reads yes/no/on/off/true/false as true/false: put it in quotes)"
                self.add(here, f"{_show(value)} is {describe(value)}, but {name} is "
                               f"{_TYPE_WORDS[ftype]}{hint}")
                continue
            if any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in seen):
                self.add(here, f"{_show(value)} is listed twice")
            seen.append(value)
            lo, hi = spec.get("minimum"), spec.get("maximum")
            if isinstance(value, int | float) and not isinstance(value, bool) and (
                    (isinstance(lo, int | float) and value < lo)
                    or (isinstance(hi, int | float) and value > hi)):
                self.add(here, f"{_show(value)} lies outside the field's minimum/maximum, so it "
                               "could never be given")
        for i, message in allowed_values_problems(enum):
            self.add(f"{place}.enum[{i}]", message)

    def default(self, field: InputField, value: Any, required: bool, place: str) -> None:
        if required:
            self.add(f"{place}.default", f"{field.name} is required, so its default would never "
                                         "be used; drop the default or make it optional")
            return
        if field.type is FieldType.OBJECT:
            self.add(f"{place}.default", "an object field cannot have a default; give defaults "
                                         "to the fields inside it instead")
            return
        _, problems = check_values((field,), {field.name: value}, "v")
        for p in problems:
            self.add(f"{place}.default", f"the default {_show(value)} does not fit the field: "
                                         f"it {p.message}")

    # thresholds

    def thresholds_(self) -> None:
        thresholds = self.data.get("thresholds", {})
        if not isinstance(thresholds, Mapping) or not self.clean_own("thresholds"):
            self.thresholds_ok = False
            return
        for name, value in thresholds.items():
            if self.clean(f"thresholds.{name}"):
                self.thresholds[str(name)] = value
            else:
                self.untyped_thresholds.add(str(name))

    # rules

    def rules(self) -> tuple[dict[str, Outcome | None], bool]:
        """Rule ids with their outcomes (None where unreadable), and whether every id is known.

        Tests are checked against these ids in the same pass, so a broken rule elsewhere
        never hides a test that names a rule that does not exist.
        """
        rules = self.data.get("rules", [])
        ids: dict[str, Outcome | None] = {}
        if not isinstance(rules, list) or not self.clean_own("rules"):
            return ids, False
        first: dict[str, int] = {}
        complete = True
        fields = field_paths(self.fields.values())
        tables = self.data.get("tables")
        rows = sum(len(t["rows"]) for t in tables if isinstance(t, Mapping)
                   and isinstance(t.get("rows"), list)) if isinstance(tables, list) else 0
        if len(rules) + rows > MAX_RULES:
            what = f"{len(rules):,} rules" if not rows else \
                f"{len(rules):,} rules and {rows:,} table rows"
            self.add("rules" if rules else "tables",
                     f"the ruleset has {what}; a ruleset may hold at most {MAX_RULES:,} rules "
                     "and table rows together")
            self.too_large = True
            return ids, False
        for i, rule in enumerate(rules):
            place = f"rules[{i}]"
            if not isinstance(rule, Mapping) or not self.clean_own(place):
                complete = False
                continue
            rule_id = rule.get("id")
            if self.clean(f"{place}.id") and isinstance(rule_id, str):
                rule_id = rule_id.strip()
                if rule_id in first:
                    self.add(f"{place}.id", f"the rule id '{rule_id}' is already used by "
                                            f"rules[{first[rule_id]}]; ids must be unique")
                else:
                    first[rule_id] = i
                    then = rule.get("then")
                    ids[rule_id] = Outcome(then.strip()) if self.clean(f"{place}.then") \
                        and isinstance(then, str) else None
            else:
                complete = False
            then = rule.get("then")
            if rule.get("escalate_to") is not None and self.clean(f"{place}.then") \
                    and self.clean(f"{place}.escalate_to") and isinstance(then, str) \
                    and then.strip() != Outcome.ESCALATE.value:
                self.add(f"{place}.escalate_to", f"escalate_to applies only to rules that "
                                                 f"escalate, and this rule's outcome is "
                                                 f"{then.strip()}")
            when = rule.get("when")
            if self.clean(f"{place}.when") and isinstance(when, str):
                self.condition(when, f"{place}.when", fields)
        return ids, complete

    # tables

    def tables(self, ids: dict[str, Outcome | None]) -> None:
        """Checks every table, row and cell; adds each row's rule id to ``ids``."""
        tables = self.data.get("tables", [])
        if self.too_large or not isinstance(tables, list) \
                or not self.clean_own("tables"):
            return
        fields = field_paths(self.fields.values())
        table_ids: dict[str, int] = {}
        for t, table in enumerate(tables):
            place = f"tables[{t}]"
            if not isinstance(table, Mapping) or not self.clean_own(place):
                continue
            table_id = table.get("id")
            if isinstance(table_id, str) and self.clean(f"{place}.id"):
                table_id = table_id.strip()
                if table_id in table_ids:
                    self.add(f"{place}.id", f"the table id '{table_id}' is already used by "
                                            f"tables[{table_ids[table_id]}]; ids must be unique")
                elif table_id in ids:
                    self.add(f"{place}.id", f"'{table_id}' is already a rule id; a table needs "
                                            "an id of its own")
                table_ids.setdefault(table_id, t)
            else:
                table_id = None
            columns = self.columns(table, place, fields)
            rows = table.get("rows")
            if not isinstance(rows, list) or not self.clean_own(f"{place}.rows"):
                continue
            row_ids: dict[str, int] = {}
            for r, row in enumerate(rows):
                here = f"{place}.rows[{r}]"
                if not isinstance(row, Mapping) or not self.clean_own(here):
                    continue
                row_id = row.get("id")
                if isinstance(row_id, str) and self.clean(f"{here}.id"):
                    row_id = row_id.strip()
                    if row_id in row_ids:
                        self.add(f"{here}.id", f"the row id '{row_id}' is already used by "
                                               f"rows[{row_ids[row_id]}]; ids must be unique "
                                               "within a table")
                    row_ids.setdefault(row_id, r)
                    if table_id is not None:
                        then = row.get("then")
                        ids[f"{table_id}.{row_id}"] = Outcome(then.strip()) \
                            if self.clean(f"{here}.then") and isinstance(then, str) else None
                then = row.get("then")
                if row.get("escalate_to") is not None and self.clean(f"{here}.then") \
                        and isinstance(then, str) and then.strip() != Outcome.ESCALATE.value:
                    self.add(f"{here}.escalate_to", "escalate_to applies only to rows that "
                                                    "escalate, and this row's outcome is "
                                                    f"{then.strip()}")
                cells = row.get("when")
                if columns is None or not isinstance(cells, list) \
                        or not self.clean(f"{here}.when"):
                    continue
                if len(cells) != len(columns):
                    self.add(f"{here}.when", f"the row has {len(cells)} cells, but the table "
                                             f"has {len(columns)} columns "
                                             f"({', '.join(c or '?' for c in columns)}); write -"
                                             " for a column the row does not test")
                    continue
                for c, (column, cell) in enumerate(zip(columns, cells, strict=True)):
                    if column is not None:
                        self.cell(column, cell, f"{here}.when[{c}]", fields)

    def columns(self, table: Mapping[str, Any], place: str,
                fields: dict[tuple[str, ...], InputField]) -> list[str | None] | None:
        """The table's columns (None where a column is unusable), or None when unreadable."""
        columns = table.get("columns")
        if not isinstance(columns, list) or not self.clean(f"{place}.columns"):
            return None
        out: list[str | None] = []
        seen: set[str] = set()
        for c, column in enumerate(columns):
            name = column.strip()
            here = f"{place}.columns[{c}]"
            path = tuple(name.split("."))
            spec = fields.get(path)
            if not self.inputs_ok or any(path[:n] in self.untyped_fields
                                         for n in range(1, len(path) + 1)):
                out.append(None)
            elif spec is None:
                close = difflib.get_close_matches(name, [".".join(p) for p in fields], n=1,
                                                  cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.add(here, f"'{name}' is not an input field{hint}")
                out.append(None)
            elif spec.type is FieldType.OBJECT:
                self.add(here, f"'{name}' is a group of fields; a column tests one value, such "
                               f"as {name}.<field>")
                out.append(None)
            elif name in seen:
                self.add(here, f"'{name}' is a column twice; combine the two cells into one "
                               "(a range or an operator)")
                out.append(None)
            else:
                out.append(name)
            seen.add(name)
        return out

    def cell(self, column: str, cell: Any, place: str,
             fields: dict[tuple[str, ...], InputField]) -> None:
        """One cell against its column's type."""
        try:
            read = read_cell(column, cell)
        except CellError as exc:
            self.add(place, f"{column}: {exc}")
            return
        if read.condition is None:
            return
        _, threshold_refs = _references(read.condition)
        if threshold_refs and not self.thresholds_ok \
                or any(name in self.untyped_thresholds for name in threshold_refs):
            return
        for problem in check_condition(read.condition, fields, self.thresholds):
            self.add(place, f"{column}: {problem.message}")

    def condition(self, when: str, place: str, fields: dict[tuple[str, ...], InputField]) -> None:
        try:
            expr = self.parsed[when] if when in self.parsed else parse_condition(when)
        except ConditionSyntaxError as exc:
            at = (exc.line, exc.column) if exc.line and exc.column else None
            self.add(place, f"the condition cannot be read: {exc.message}", at)
            return
        self.parsed[when] = expr
        field_refs, threshold_refs = _references(expr)
        if field_refs and not self.inputs_ok:
            return
        if threshold_refs and not self.thresholds_ok:
            return
        if any(ref[:n] in self.untyped_fields for ref in field_refs
               for n in range(1, len(ref) + 1)) \
                or any(name in self.untyped_thresholds for name in threshold_refs):
            return  # that field's or threshold's own problem is reported already
        for problem in check_condition(expr, fields, self.thresholds):
            at = (problem.line, problem.column) if problem.line and problem.column else None
            self.add(place, problem.message, at)

    # tests

    def tests(self, rule_ids: dict[str, Outcome | None], ids_complete: bool) -> None:
        tests = self.data.get("tests", [])
        if not isinstance(tests, list) or not self.clean_own("tests"):
            return
        names: dict[str, int] = {}
        for i, test in enumerate(tests):
            place = f"tests[{i}]"
            if not isinstance(test, Mapping) or not self.clean_own(place):
                continue
            name = test.get("name")
            if isinstance(name, str) and self.clean(f"{place}.name"):
                if name.strip() in names:
                    self.add(f"{place}.name", f"another test (tests[{names[name.strip()]}]) "
                                              "has the same name; names must be unique")
                names.setdefault(name.strip(), i)
            expect = test.get("expect")
            if isinstance(expect, Mapping) and not self.too_large:
                self.expectation(expect, f"{place}.expect", rule_ids, ids_complete)
            raw_input = test.get("input")
            if self.clean(f"{place}.input") and self.inputs_ok and isinstance(raw_input, Mapping):
                untyped_names = {p[0] for p in self.untyped_fields}
                _, problems = check_values(tuple(self.fields.values()), raw_input,
                                           f"{place}.input")
                for p in problems:
                    name_part = p.place[len(f"{place}.input."):].split(".")[0]
                    if name_part not in untyped_names:
                        self.add(p.place, p.message)

    def expectation(self, expect: Mapping[str, Any], place: str,
                    rule_ids: dict[str, Outcome | None], ids_complete: bool) -> None:
        listed: dict[str, list[str]] = {}
        for key in ("fired", "deciding"):
            ids = expect.get(key)
            if not isinstance(ids, list) or not self.clean(f"{place}.{key}"):
                continue
            listed[key] = []
            for j, rule_id in enumerate(ids):
                rule_id = rule_id.strip()
                here = f"{place}.{key}[{j}]"
                if rule_id in listed[key]:
                    self.add(here, f"{rule_id} is listed twice")
                elif rule_id not in rule_ids and ids_complete:
                    close = difflib.get_close_matches(rule_id, list(rule_ids), n=1, cutoff=0.6)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    self.add(here, f"there is no rule '{rule_id}' in this ruleset{hint}")
                listed[key].append(rule_id)
        if "fired" in listed and "deciding" in listed:
            for j, rule_id in enumerate(listed["deciding"]):
                if rule_id in rule_ids and rule_id not in listed["fired"]:
                    self.add(f"{place}.deciding[{j}]", f"{rule_id} is expected to decide, so it "
                                                       "must also be listed under fired")
        outcome = expect.get("outcome")
        if "deciding" in listed and isinstance(outcome, str) and self.clean(f"{place}.outcome"):
            for j, rule_id in enumerate(listed["deciding"]):
                decides = rule_ids.get(rule_id)
                if decides is not None and decides.value != outcome.strip():
                    self.add(f"{place}.deciding[{j}]",
                             f"{rule_id} decides {decides.value}, but the test "
                             f"expects the outcome {outcome.strip()}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, int) else repr(value)


def _references(expr: Expr) -> tuple[list[tuple[str, ...]], list[str]]:
    """Field paths and threshold names a condition mentions."""
    fields: list[tuple[str, ...]] = []
    thresholds: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, FieldRef):
            fields.append(node.path)
        elif isinstance(node, ThresholdRef):
            thresholds.append(node.name)
        elif hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                child = getattr(node, name)
                if isinstance(child, tuple):
                    for c in child:
                        visit(c)
                else:
                    visit(child)

    visit(expr)
    return fields, thresholds


# -- places to lines ----------------------------------------------------------------------


def _index_in_scalar(source: _Source, node: yaml.ScalarNode, line: int,
                     column: int) -> int | None:
    """The file index of (line, column) inside a scalar's value, or None if unsure."""
    value: str = node.value
    lines = value.split("\n")
    if line < 1 or line > len(lines) or column < 1:
        return None
    target = sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
    if target >= len(value):
        target = len(value) - 1
    text = source.text
    p, end = node.start_mark.index, node.end_mark.index
    if node.style in ("|", ">"):
        p = text.find("\n", p) + 1  # the block's content starts after its header line
        if p == 0:
            return None
    elif node.style in ("'", '"'):
        p += 1
    for j, ch in enumerate(value):
        if ch.isspace():
            if j == target:
                return p if p < end else None
            continue
        while p < end and text[p] != ch and text[p].isspace():
            p += 1
        if node.style == '"' and p + 1 < end and text[p] == "\\" and text[p + 1] == ch:
            p += 1
        if p >= end or text[p] != ch:
            return None
        if j == target:
            return p
        p += 1
    return None


def _locate(found: _Found, source: _Source | None) -> Problem:
    if source is None:
        message = found.message
        if found.at is not None:
            line, column = found.at
            message += f" (at line {line}, column {column} of the condition)" if line > 1 \
                else f" (at column {column} of the condition)"
        return Problem(found.place, message)
    place = found.place
    while place and place not in source.nodes:
        place = _parent(place)
    if not place:
        return Problem(found.place, found.message)
    key, node = source.nodes[place]
    if found.at is not None and place == found.place and isinstance(node, yaml.ScalarNode):
        index = _index_in_scalar(source, node, *found.at)
        if index is not None:
            return Problem(found.place, found.message, *source.position(index))
    use_key = key is not None and (not isinstance(node, yaml.ScalarNode) or place != found.place)
    return Problem(found.place, found.message,
                   *_mark(key.start_mark if use_key and key else node.start_mark))


# -- building the ruleset -----------------------------------------------------------------


def _canonical_field(spec: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": spec["type"], "required": bool(spec.get("required", False))}
    for key in ("default", "enum", "minimum", "maximum", "pattern", "description"):
        if key in spec:
            out[key] = spec[key]
    if "properties" in spec:
        out["properties"] = {n: _canonical_field(s) for n, s in spec["properties"].items()}
    return out


def canonical_definition(data: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical, JSON-able form of structure-checked ruleset data."""
    rules = []
    for r in data["rules"]:
        rule: dict[str, Any] = {"id": r["id"], "when": r["when"], "then": r["then"]}
        for key in ("description", "reason"):
            if key in r:
                rule[key] = r[key]
        if r["then"] == Outcome.ESCALATE.value:
            rule["escalate_to"] = r.get("escalate_to", "approver")
        rules.append(rule)
    tests = []
    for t in data.get("tests", []):
        expect = {k: v for k, v in t["expect"].items() if k == "outcome"}
        for key in ("fired", "deciding"):
            if key in t["expect"]:
                expect[key] = sorted(set(t["expect"][key]))
        tests.append({"name": t["name"], "input": t["input"], "expect": expect})
    tables = []
    for t in data.get("tables", []):
        rows = []
        for r in t["rows"]:
            row: dict[str, Any] = {"id": r["id"], "when": [_canonical_cell(c) for c in r["when"]],
                                   "then": r["then"]}
            for key in ("description", "reason"):
                if key in r:
                    row[key] = r[key]
            if r["then"] == Outcome.ESCALATE.value:
                row["escalate_to"] = r.get("escalate_to", "approver")
            rows.append(row)
        table: dict[str, Any] = {"id": t["id"], "columns": list(t["columns"]), "rows": rows}
        if "description" in t:
            table["description"] = t["description"]
        tables.append(table)
    definition = {
        "name": data["name"],
        "title": data["title"],
        "description": data.get("description", ""),
        "owners": {role: {"primary": data["owners"][role]["primary"],
                          "backup": data["owners"][role]["backup"]} for role in ROLES},
        "signoff": sorted(set(data.get("signoff", ["approver"])), key=ROLES.index),
        "thresholds": dict(data.get("thresholds", {})),
        "inputs": {n: _canonical_field(s) for n, s in data.get("inputs", {}).items()},
        "rules": rules,
        # Only written when there are tables, so a ruleset without any hashes as before.
        **({"tables": tables} if tables else {}),
        "default": data["default"],
        "fallback": data["fallback"],
        "tests": tests,
        "runbook": data["runbook"],
        "impact": data.get("impact", {}),
    }
    # A deep copy, so nothing in the Ruleset shares mutable state with its definition.
    return copy.deepcopy(definition)


def _canonical_cell(cell: Any) -> Any:
    return cell.strip() if isinstance(cell, str) else \
        [c.strip() if isinstance(c, str) else c for c in cell] if isinstance(cell, list) else cell


def _rules(d: Mapping[str, Any], parsed: Mapping[str, Expr]) -> tuple[Rule, ...]:
    """The rules, then every table's rows as rules ``TABLE.ROW``; conditions already in
    ``parsed`` are not parsed again."""
    rules = [Rule(id=r["id"], when=r["when"],
                  condition=parsed[r["when"]] if r["when"] in parsed
                  else parse_condition(r["when"]),
                  then=Outcome(r["then"]), description=r.get("description"),
                  reason=r.get("reason"), escalate_to=r.get("escalate_to", "approver"))
             for r in d["rules"]]
    for table in d.get("tables", []):
        for row in table_rows(table):
            body = row.body
            rules.append(Rule(id=row.rule_id, when=row.when, condition=row.condition,
                              then=Outcome(body["then"]), description=body.get("description"),
                              reason=body.get("reason"),
                              escalate_to=body.get("escalate_to", "approver")))
    return tuple(rules)


def _input_field(name: str, spec: Mapping[str, Any]) -> InputField:
    return InputField(
        name=name, type=FieldType(spec["type"]), required=spec["required"],
        default=spec.get("default"), has_default="default" in spec,
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        minimum=spec.get("minimum"), maximum=spec.get("maximum"), pattern=spec.get("pattern"),
        description=spec.get("description"),
        properties=tuple(_input_field(n, s) for n, s in spec.get("properties", {}).items()))


def _ruleset(definition: dict[str, Any], parsed: Mapping[str, Expr]) -> Ruleset:
    d = copy.deepcopy(definition)
    return Ruleset(
        name=d["name"], title=d["title"], description=d["description"],
        owners={role: RoleHolders(h["primary"], h["backup"]) for role, h in d["owners"].items()},
        signoff=tuple(d["signoff"]),
        thresholds=d["thresholds"],
        inputs=tuple(_input_field(n, s) for n, s in d["inputs"].items()),
        rules=_rules(d, parsed),
        default=Outcome(d["default"]),
        fallback=Outcome(d["fallback"]),
        tests=tuple(RuleTest(name=t["name"], input=t["input"],
                             expect_outcome=Outcome(t["expect"]["outcome"])
                             if "outcome" in t["expect"] else None,
                             expect_fired=tuple(t["expect"]["fired"])
                             if "fired" in t["expect"] else None,
                             expect_deciding=tuple(t["expect"]["deciding"])
                             if "deciding" in t["expect"] else None)
                    for t in d["tests"]),
        runbook=d["runbook"],
        impact=d["impact"],
        definition=definition,
    )


def _size_problem(data: Any) -> _Found | None:
    """Too many rules and table rows, counted before anything else is checked: the other
    checks cost time per rule, and a ruleset this large is refused whatever they find."""
    if not isinstance(data, Mapping):
        return None
    rules, tables = data.get("rules"), data.get("tables")
    count = len(rules) if isinstance(rules, list) else 0
    rows = sum(len(t["rows"]) for t in tables if isinstance(t, Mapping)
               and isinstance(t.get("rows"), list)) if isinstance(tables, list) else 0
    if count + rows <= MAX_RULES:
        return None
    what = f"{count:,} rules" if not rows else f"{count:,} rules and {rows:,} table rows"
    return _Found("rules" if count else "tables",
                  f"the ruleset has {what}; a ruleset may hold at most {MAX_RULES:,} rules "
                  "and table rows together")


def _load(data: Any, source: _Source | None, early: list[Problem]) -> Ruleset:
    too_large = _size_problem(data)
    if too_large is not None:
        raise RulesetInvalid([*early, _locate(too_large, source)])
    loaded, structure = load_structure(data)
    found = [_Found(p.place, p.message) for p in structure]
    checker = _Checker(data, structure) if isinstance(data, Mapping) else None
    if checker is not None:
        found += checker.run()
    problems = early + [_locate(f, source) for f in found]
    if problems or loaded is None:
        raise RulesetInvalid(problems or [Problem("", "the ruleset could not be read")])
    ruleset = _ruleset(canonical_definition(loaded), checker.parsed if checker else {})
    _check_engine_limits(ruleset)
    return ruleset


def _check_engine_limits(ruleset: Ruleset) -> None:
    """Refuses, at load time, a ruleset the engine could not run (it would only fall back)."""
    try:
        compile_ruleset(ruleset)
    except EngineCompileError as exc:
        raise RulesetInvalid([Problem("rules", f"the rule engine cannot run this ruleset: "
                                               f"{exc}; split large conditions or rules")]) \
            from None


def load_ruleset_definition(definition: Any, source: str = "<definition>") -> Ruleset:
    """Validates an already-parsed definition (the API's ``{"definition": {...}}`` body)."""
    return _load(definition, None, [])


def load_ruleset_text(text: str, source: str = "<text>") -> Ruleset:
    """Parses and validates ruleset text (YAML, or JSON); raises RulesetInvalid."""
    if not isinstance(text, str):
        raise RulesetInvalid([Problem("", f"the ruleset must be text, not {describe(text)}")])
    if len(text) > MAX_FILE_CHARS:
        raise RulesetInvalid([Problem("", f"the file is too large (more than {MAX_FILE_CHARS} "
                                          "characters)")])
    if not text.strip():
        raise RulesetInvalid([Problem("", "the file is empty")])
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # no UTF-8 file holds one; only a JSON escape can make one
        raise RulesetInvalid([_character_problem(text, surrogate.start())])
    data, src, problems = _read(text, source)
    if data is None:
        raise RulesetInvalid(problems)
    return _load(data, src, problems)


def load_ruleset_file(path: str | Path) -> Ruleset:
    """Reads and validates a ruleset file; raises RulesetInvalid (OSError if unreadable)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RulesetInvalid([Problem("", "the file is not UTF-8 text")]) from None
    return load_ruleset_text(text, str(p))


__all__ = ["canonical_definition", "load_ruleset_definition", "load_ruleset_file",
           "load_ruleset_text"]
