"""The STRUCTURE of a ruleset file as marshmallow schemas: keys, types, required settings.

Meaning (conditions, cross-references, defaults that fit their field) is checked in
``checks``; these schemas only say what may be written where. They are strict:
unknown keys are errors (a typo must never be silently ignored), and nothing is coerced
(``"5"`` is not a number, ``"yes"`` is not a boolean).

Required: name, title, owners (all four roles, each with a primary AND a backup), rules
or tables (at least one of them), default, fallback, runbook with purpose and escalation (path and
response_time_target). Optional: description, signoff (default [approver]), thresholds,
inputs, tests, impact, review_every (how often the business owner reviews the active
version, a duration like 90d) and the other runbook sections (restart: the checklist for
resuming after a pause or a rollback).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validates,
    validates_schema,
)

from rules_service.domain.inputs import MAX_SAFE_INTEGER
from rules_service.domain.lifecycle import parse_duration
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import ROLES, FieldType, Outcome
from rules_service.language.parser import RESERVED

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*\Z")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
OUTCOMES = tuple(o.value for o in Outcome)
FIELD_TYPES = tuple(t.value for t in FieldType)

# marshmallow's own messages, said the way a business owner would understand them.
_PLAIN = {
    "Missing data for required field.": "is required but missing",
    "Field may not be null.": "must not be empty",
    "Not a valid string.": "must be text",
    "Not a valid list.": "must be a list",
    "Invalid input type.": "must be a group of settings (key: value)",
    "Not a valid mapping type.": "must be a group of settings (key: value)",
    "Unknown field.": "is not a known setting",
}


def _suggest(value: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def describe(value: Any) -> str:
    """A plain word for what kind of value was written."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a group of settings"
    if isinstance(value, list | tuple):
        return "a list"
    # YAML turns 2024-01-01 into a date and 12:30 into a number; say so.
    return f"a {type(value).__name__} (put it in quotes to make it text)"


def normalize_number(value: Any) -> Any:
    """An integral float becomes an int, so 500 and 500.0 are the same content."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def normalize_value(value: Any) -> Any:
    """normalize_number applied through lists and mappings."""
    if isinstance(value, Mapping):
        return {k: normalize_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize_value(v) for v in value]
    return normalize_number(value)


# -- fields -------------------------------------------------------------------------------


class Text(fields.Field):
    """Text, trimmed; empty text is refused unless ``allow_empty``."""

    def __init__(self, *, allow_empty: bool = False, max_length: int = 10_000,
                 pattern: re.Pattern[str] | None = None, pattern_hint: str = "",
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.allow_empty = allow_empty
        self.max_length = max_length
        self.pattern = pattern
        self.pattern_hint = pattern_hint

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be text, not {describe(value)}")
        text = value.strip()
        if not text and not self.allow_empty:
            raise ValidationError("must not be empty")
        if len(text) > self.max_length:
            raise ValidationError(f"is too long (at most {self.max_length} characters)")
        if self.pattern is not None and not self.pattern.match(text):
            raise ValidationError(f"'{text}' is not allowed here: {self.pattern_hint}")
        return text


class Slug(Text):
    """Lowercase letters, digits and single hyphens, 1-63 characters."""

    def __init__(self, **kwargs: Any):
        super().__init__(max_length=63, pattern=SLUG,
                         pattern_hint="use lowercase letters, digits and '-' "
                                      "(like expense-approval), at most 63 characters",
                         **kwargs)


class Choice(Text):
    """One of a fixed set of words, with a suggestion for a near miss."""

    def __init__(self, choices: tuple[str, ...], what: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.choices = choices
        self.what = what

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in self.choices:
            raise ValidationError(f"'{text}' is not {self.what}; use "
                                  f"{', '.join(self.choices)}{_suggest(text, self.choices)}")
        return text


class Number(fields.Field):
    """A finite number (true/false and quoted numbers are refused)."""

    def __init__(self, *, minimum: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"must be a number, not {describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("must be a finite number")
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValidationError(f"is too large (at most {MAX_SAFE_INTEGER})")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"must be at least {self.minimum:g}")
        return normalize_number(value)


class Flag(fields.Field):
    """true or false, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, not {describe(value)}")
        return value


class ScalarValue(fields.Field):
    """A threshold value: a number, text or true/false."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int | float):
            return Number()._deserialize(value, attr, data)
        raise ValidationError(f"must be a number, text or true/false, not {describe(value)}")


class AnyValue(fields.Field):
    """Any value (checked for meaning later), numbers normalized."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return normalize_value(value)


class ObjectValue(fields.Field):
    """A mapping of values (a test's input), numbers normalized."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValidationError(f"must be a group of field values, not {describe(value)}")
        return normalize_value(value)


class NamedMap(fields.Field):
    """A mapping from names the condition language can refer to, to checked values."""

    def __init__(self, value_field: fields.Field, what: str,
                 reserved: frozenset[str] = frozenset(), **kwargs: Any):
        super().__init__(**kwargs)
        self.value_field = value_field
        self.what = what
        self.reserved = reserved

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"must be a group of settings (name: ...), "
                                  f"not {describe(value)}")
        out: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str) or not IDENTIFIER.match(name):
                errors[str(name)] = [f"'{name}' cannot be used as {self.what} name: use letters, "
                                     "digits and '_', starting with a letter"]
                continue
            if name in RESERVED or name in self.reserved:
                errors[name] = [f"'{name}' is a reserved word and cannot be used as {self.what} "
                                "name"]
                continue
            try:
                out[name] = self.value_field.deserialize(item, name, value)
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return out


# -- schemas ------------------------------------------------------------------------------


class StrictSchema(Schema):
    """Refuses unknown keys (suggesting the near miss) and drops settings left empty."""

    class Meta:
        unknown = EXCLUDE

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _no_unknown_keys(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, Mapping):
            return
        known = tuple(self.fields)
        errors = {}
        for key in original_data:
            if key not in self.fields:
                hint = _suggest(str(key), known)
                if original_data[key] is None and not IDENTIFIER.match(str(key)):
                    # `{description: Code, e.g. DE}`: the comma ended the text early.
                    hint = ("; it looks like the rest of a text: inside { } a comma ends a "
                            "value, so put text that contains commas in quotes")
                errors[str(key)] = [f"'{key}' is not a known setting here{hint}"
                                    f" (allowed: {', '.join(known)})"]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _drop_empty(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {k: v for k, v in data.items() if v is not None}


class RoleHoldersSchema(StrictSchema):
    """A role's primary and backup holder."""

    primary = Text(required=True, max_length=200)
    backup = Text(required=True, max_length=200)


def _role(role: str) -> fields.Nested:
    return fields.Nested(RoleHoldersSchema, required=True, error_messages={
        "required": f"the role {role} is missing; name its primary and backup "
                    "(every ruleset needs all four roles filled)"})


class OwnersSchema(StrictSchema):
    """The four roles; every one must be filled."""

    business_owner = _role("business_owner")
    operations_owner = _role("operations_owner")
    approver = _role("approver")
    maintainer = _role("maintainer")


class InputFieldSchema(StrictSchema):
    """One input field; ``properties`` nests fields of an object."""

    type = Choice(FIELD_TYPES, "a field type", required=True)
    required = Flag(load_default=False)
    default = AnyValue(allow_none=True)
    enum = fields.List(AnyValue(), allow_none=True)
    minimum = Number(allow_none=True)
    maximum = Number(allow_none=True)
    pattern = Text(allow_none=True)
    description = Text(allow_empty=True, allow_none=True)
    properties = NamedMap(fields.Nested(lambda: InputFieldSchema()), "a field", allow_none=True)


class RuleSchema(StrictSchema):
    """One rule."""

    id = Slug(required=True)
    description = Text(allow_empty=True, allow_none=True)
    when = Text(required=True, max_length=5000)
    then = Choice(OUTCOMES, "an outcome", required=True)
    reason = Text(allow_empty=True, allow_none=True)
    escalate_to = Choice(ROLES, "a role", allow_none=True)


class Cells(fields.Field):
    """A row's cells: a list of values, lists or operator/range text (read in domain.tables)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError(f"must be a list of cells, one per column, not "
                                  f"{describe(value)}")
        return normalize_value(value)


class RowSchema(StrictSchema):
    """One row of a decision table: a rule whose condition is its cells."""

    id = Slug(required=True)
    description = Text(allow_empty=True, allow_none=True)
    when = Cells(required=True)
    then = Choice(OUTCOMES, "an outcome", required=True)
    reason = Text(allow_empty=True, allow_none=True)
    escalate_to = Choice(ROLES, "a role", allow_none=True)


class TableSchema(StrictSchema):
    """A decision table: the input fields its cells test, and its rows."""

    id = Slug(required=True)
    description = Text(allow_empty=True, allow_none=True)
    columns = fields.List(Text(max_length=200), required=True)
    rows = fields.List(fields.Nested(RowSchema), required=True)

    @validates_schema(skip_on_field_errors=False)
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors = {}
        if "columns" in data and not data["columns"]:
            errors["columns"] = ["name at least one input field the rows test"]
        if "rows" in data and not data["rows"]:
            errors["rows"] = ["a table needs at least one row"]
        if errors:
            raise ValidationError(errors)


class ExpectSchema(StrictSchema):
    """What a test expects; at least one of outcome, fired, deciding."""

    outcome = Choice(OUTCOMES, "an outcome")
    fired = fields.List(Text())
    deciding = fields.List(Text())

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _something_expected(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if isinstance(original_data, Mapping) and not any(
                k in original_data for k in ("outcome", "fired", "deciding")):
            raise ValidationError("say what the test expects: outcome, fired and/or deciding")


class RuleTestSchema(StrictSchema):
    """One embedded test."""

    name = Text(required=True, max_length=200)
    input = ObjectValue(required=True)
    expect = fields.Nested(ExpectSchema, required=True)


class ExceptionSchema(StrictSchema):
    """A known exception case and how to respond to it."""

    type = Text(required=True)
    response = Text(required=True)


class EscalationSchema(StrictSchema):
    """Who handles escalations, and how fast."""

    path = fields.List(Text(max_length=200), required=True)
    response_time_target = Text(required=True, max_length=20)

    @validates_schema(skip_on_field_errors=False)
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if "path" in data and not data["path"]:
            errors["path"] = ["name at least one person or team to escalate to"]
        target = data.get("response_time_target")
        if isinstance(target, str):
            try:
                zero = parse_duration(target).total_seconds() == 0
            except ValueError:
                errors["response_time_target"] = [
                    f"'{target}' is not a duration; write it like 30m, 4h, 2d or 1h30m"]
            else:
                if zero:
                    errors["response_time_target"] = ["must be longer than zero"]
        if errors:
            raise ValidationError(errors)


class RunbookSchema(StrictSchema):
    """How operators run the ruleset day to day."""

    purpose = Text(required=True)
    boundaries = Text(allow_none=True)
    normal_steps = fields.List(Text(), allow_none=True)
    exceptions = fields.List(fields.Nested(ExceptionSchema), allow_none=True)
    escalation = fields.Nested(EscalationSchema, required=True)
    rollback = Text(allow_none=True)
    restart = fields.List(Text(), allow_none=True)


class ImpactSchema(StrictSchema):
    """The business value of an automatic decision."""

    minutes_saved_per_auto_decision = Number(minimum=0)


class RulesetSchema(StrictSchema):
    """A whole ruleset file."""

    name = Slug(required=True)
    title = Text(required=True, max_length=200)
    description = Text(allow_empty=True, allow_none=True)
    owners = fields.Nested(OwnersSchema, required=True)
    signoff = fields.List(Choice(ROLES, "a role"), load_default=lambda: ["approver"])
    thresholds = NamedMap(ScalarValue(), "a threshold", load_default=dict)
    inputs = NamedMap(fields.Nested(InputFieldSchema), "an input field",
                      reserved=frozenset({"thresholds"}), load_default=dict)
    rules = fields.List(fields.Nested(RuleSchema), load_default=list)
    tables = fields.List(fields.Nested(TableSchema), load_default=list)
    default = Choice(OUTCOMES, "an outcome", required=True)
    fallback = Choice(OUTCOMES, "an outcome", required=True)
    tests = fields.List(fields.Nested(RuleTestSchema), load_default=list)
    runbook = fields.Nested(RunbookSchema, required=True)
    impact = fields.Nested(ImpactSchema, load_default=dict)
    review_every = Text(max_length=20)

    @validates("review_every")
    def _review_every(self, value: str, **kwargs: Any) -> None:
        try:
            zero = parse_duration(value).total_seconds() == 0
        except ValueError:
            raise ValidationError(f"'{value}' is not a duration; write it like 90d, 30d "
                                  f"or 12h") from None
        if zero:
            raise ValidationError("must be longer than zero")

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _lists_not_empty(self, data: dict[str, Any], original_data: Any,
                         **kwargs: Any) -> None:
        errors = {}
        written = original_data if isinstance(original_data, Mapping) else {}
        if "rules" not in written and "tables" not in written:
            errors["rules"] = ["is required but missing"]
        elif "rules" in data and not data["rules"] and not data.get("tables") \
                and "tables" not in written:
            errors["rules"] = ["a ruleset needs at least one rule or decision table"]
        if "signoff" in data and not data["signoff"]:
            errors["signoff"] = ["name at least one role that must sign off changes"]
        if errors:
            raise ValidationError(errors)


def _join(place: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{place}[{key}]"
    if key == "_schema":
        return place
    return f"{place}.{key}" if place else str(key)


def flatten_errors(messages: Any, place: str = "") -> list[Problem]:
    """marshmallow's nested error messages as a flat list of problems with places."""
    problems: list[Problem] = []
    if isinstance(messages, Mapping):
        for key, inner in messages.items():
            problems.extend(flatten_errors(inner, _join(place, key)))
    elif isinstance(messages, list | tuple):
        for item in messages:
            problems.extend(flatten_errors(item, place))
    else:
        text = str(messages)
        problems.append(Problem(place, _PLAIN.get(text, text)))
    return problems


def load_structure(definition: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """(loaded data, []) when the structure is right, else (None, every structure problem)."""
    if not isinstance(definition, Mapping):
        return None, [Problem("", "a ruleset must be a group of settings (name:, title:, "
                                  f"rules: ...), not {describe(definition)}")]
    try:
        return RulesetSchema().load(definition), []
    except ValidationError as exc:
        return None, flatten_errors(exc.messages)


__all__ = ["RulesetSchema", "describe", "flatten_errors", "load_structure",
           "normalize_number", "normalize_value"]
