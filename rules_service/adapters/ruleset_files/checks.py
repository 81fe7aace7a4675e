"""The meaning of a ruleset file: conditions, roles, defaults, tables and tests.

The structure (what may be written where) is checked by the schemas in ``format``; these
checks run over the raw data, skip the parts whose structure is broken, and name each
problem by its place (``rules[2].when``), with a line and column inside the value when the
problem is inside a condition.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules_service.adapters.ruleset_files.format import describe
from rules_service.domain.inputs import check_values
from rules_service.domain.lookalikes import allowed_values_problems
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import ROLES, FieldType, InputField, Outcome
from rules_service.domain.tables import CellError, cell_key, read_cell
from rules_service.language.ast import Expr, FieldRef, ThresholdRef
from rules_service.language.parser import ConditionSyntaxError, parse_condition
from rules_service.language.patterns import regex_problem
from rules_service.language.typecheck import check_condition, field_paths
from rules_service.language.wording import TYPE_WORDS, show_written

_NUMERIC = (FieldType.NUMBER, FieldType.INTEGER)


@dataclass
class Found:
    """A problem found in the data; ``at`` is a (line, column) inside the value, if known."""

    place: str
    message: str
    at: tuple[int, int] | None = None


class Checker:
    """Semantic checks over the raw data, skipping parts whose structure is broken."""

    def __init__(self, data: Mapping[str, Any], structure: list[Problem]):
        self.data = data
        self.bad = [p.place for p in structure]
        self.found: list[Found] = []
        self.fields: dict[str, InputField] = {}
        self.untyped_fields: set[tuple[str, ...]] = set()
        self.inputs_ok = True
        self.thresholds: dict[str, Any] = {}
        self.thresholds_ok = True
        self.untyped_thresholds: set[str] = set()
        self.parsed: dict[str, Expr] = {}
        """Each condition text parsed here, so building the ruleset parses none again."""
        self.cell_problems: dict[tuple[str, Any], list[str]] = {}
        """The problems of each distinct cell of a column, found once however often it
        repeats."""

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
        self.found.append(Found(place, message, at))

    def run(self) -> list[Found]:
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

        self.field_settings(name, ftype, spec, place)
        minimum, maximum, enum = spec.get("minimum"), spec.get("maximum"), spec.get("enum")

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

    def field_settings(self, name: str, ftype: FieldType, spec: Mapping[str, Any],
                       place: str) -> None:
        """Checks that a field's settings (properties, minimum, maximum, pattern, enum) fit
        its type and each other."""
        if "properties" in spec and spec["properties"] is not None:
            if ftype is not FieldType.OBJECT:
                self.add(f"{place}.properties", "only object fields have properties")
        elif ftype is FieldType.OBJECT:
            self.add(place, "an object field needs properties: the fields inside it")
        for key in ("minimum", "maximum"):
            if spec.get(key) is not None and ftype not in _NUMERIC:
                self.add(f"{place}.{key}", f"{key} applies only to number and integer fields, "
                                           f"and {name} is {TYPE_WORDS[ftype]}")
        if spec.get("pattern") is not None and self.clean(f"{place}.pattern"):
            if ftype is not FieldType.STRING:
                self.add(f"{place}.pattern", f"a pattern applies only to text fields, and {name}"
                                             f" is {TYPE_WORDS[ftype]}")
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
                self.add(here, f"{show_written(value)} is {describe(value)}, but {name} is "
                               f"{TYPE_WORDS[ftype]}{hint}")
                continue
            if any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in seen):
                self.add(here, f"{show_written(value)} is listed twice")
            seen.append(value)
            lo, hi = spec.get("minimum"), spec.get("maximum")
            if isinstance(value, int | float) and not isinstance(value, bool) and (
                    (isinstance(lo, int | float) and value < lo)
                    or (isinstance(hi, int | float) and value > hi)):
                self.add(here, f"{show_written(value)} lies outside the field's "
                               "minimum/maximum, so it could never be given")
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
            self.add(f"{place}.default", f"the default {show_written(value)} does not fit "
                                         f"the field: it {p.message}")

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
        if not isinstance(tables, list) or not self.clean_own("tables"):
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
                self.row(row, r, f"{place}.rows[{r}]", table_id, row_ids, ids, columns, fields)

    def row(self, row: Any, r: int, here: str, table_id: str | None, row_ids: dict[str, int],
            ids: dict[str, Outcome | None], columns: list[str | None] | None,
            fields: dict[tuple[str, ...], InputField]) -> None:
        """Checks one table row and its cells; adds its rule id to ``ids``."""
        if not isinstance(row, Mapping) or not self.clean_own(here):
            return
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
            return
        if len(cells) != len(columns):
            self.add(f"{here}.when", f"the row has {len(cells)} cells, but the table "
                                     f"has {len(columns)} columns "
                                     f"({', '.join(c or '?' for c in columns)}); write -"
                                     " for a column the row does not test")
            return
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
        key = cell_key(cell)
        messages = None if key is None else self.cell_problems.get((column, key))
        if messages is None:
            messages = self.cell_messages(column, cell, fields)
            if key is not None:
                self.cell_problems[(column, key)] = messages
        for message in messages:
            self.add(place, message)

    def cell_messages(self, column: str, cell: Any,
                      fields: dict[tuple[str, ...], InputField]) -> list[str]:
        try:
            read = read_cell(column, cell)
        except CellError as exc:
            return [f"{column}: {exc}"]
        if read.condition is None:
            return []
        _, threshold_refs = references(read.condition)
        if threshold_refs and not self.thresholds_ok \
                or any(name in self.untyped_thresholds for name in threshold_refs):
            return []
        return [f"{column}: {problem.message}"
                for problem in check_condition(read.condition, fields, self.thresholds)]

    def condition(self, when: str, place: str, fields: dict[tuple[str, ...], InputField]) -> None:
        try:
            expr = self.parsed[when] if when in self.parsed else parse_condition(when)
        except ConditionSyntaxError as exc:
            at = (exc.line, exc.column) if exc.line and exc.column else None
            self.add(place, f"the condition cannot be read: {exc.message}", at)
            return
        self.parsed[when] = expr
        field_refs, threshold_refs = references(expr)
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
            if isinstance(expect, Mapping):
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


def references(expr: Expr) -> tuple[list[tuple[str, ...]], list[str]]:
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


