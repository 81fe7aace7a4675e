"""Checks an evaluation input against a ruleset's ``inputs`` schema and applies defaults."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from rules_service.domain.errors import InputInvalid
from rules_service.domain.lookalikes import looks_like
from rules_service.domain.problems import PREVIEW_CHARS, Problem, preview
from rules_service.domain.ruleset import FieldType, InputField, Ruleset
from rules_service.language.patterns import PatternTimeout, search
from rules_service.language.wording import EXPECTED_TYPE_WORDS, show_given

MAX_SAFE_INTEGER = 9007199254740991
"""Numbers beyond this lose precision in JSON clients, so they are refused."""

MAX_SUGGESTED_KEYS = 20
"""Unknown keys past this many get no 'did you mean': fuzzy matching costs time per key."""


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _check_scalar(f: InputField, value: Any, place: str,
                  problems: list[Problem]) -> tuple[bool, Any]:
    """(ok, normalized value) of one non-object value."""
    if f.type in (FieldType.NUMBER, FieldType.INTEGER):
        # bool is an int in Python, but true is not a number to the people who write inputs.
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(place, f"must be {EXPECTED_TYPE_WORDS[f.type]}, "
                                           f"not {_what(value)}"))
            return False, value
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(place, "must be a finite number"))
            return False, value
        if abs(value) > MAX_SAFE_INTEGER:
            problems.append(Problem(place, f"is too large (numbers must lie between "
                                           f"-{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER})"))
            return False, value
        if f.type is FieldType.INTEGER and isinstance(value, float):
            if not value.is_integer():
                problems.append(Problem(place, f"must be a whole number, not {show_given(value)}"))
                return False, value
            value = int(value)
    elif f.type is FieldType.STRING:
        if not isinstance(value, str):
            problems.append(Problem(place, f"must be text, not {_what(value)}"))
            return False, value
    elif f.type is FieldType.BOOLEAN and not isinstance(value, bool):
        problems.append(Problem(place, f"must be true or false, not {_what(value)}"))
        return False, value

    ok = True
    # Types were checked above, so equality is enough; bools must not equal 1 or 0.
    if f.enum is not None and not any(e == value and isinstance(e, bool) == isinstance(value, bool)
                                      for e in f.enum):
        message = (f"must be one of {', '.join(show_given(e) for e in f.enum)}; "
                   f"got {show_given(value)}")
        impostor = looks_like(value, f.enum) if isinstance(value, str) else None
        if impostor is not None:
            message += f", which {impostor.explain()}"
        problems.append(Problem(place, message))
        ok = False
    if f.minimum is not None and isinstance(value, int | float) and value < f.minimum:
        problems.append(Problem(place, f"must be at least {show_given(f.minimum)}; "
                                       f"got {show_given(value)}"))
        ok = False
    if f.maximum is not None and isinstance(value, int | float) and value > f.maximum:
        problems.append(Problem(place, f"must be at most {show_given(f.maximum)}; "
                                       f"got {show_given(value)}"))
        ok = False
    if f.pattern is not None and isinstance(value, str):
        try:
            found = search(f.pattern, value)
        except PatternTimeout:
            problems.append(Problem(place, "could not be checked against the field's pattern "
                                           "in time; shorten the value"))
            return False, value
        if not found:
            problems.append(Problem(place, f"does not have the required form "
                                           f"(pattern {f.pattern})"))
            ok = False
    return ok, value


def check_values(fields: Iterable[InputField], raw: Any,
                 place: str = "input") -> tuple[dict[str, Any], list[Problem]]:
    """The normalized values (defaults applied) and every problem of ``raw`` against fields."""
    fields = tuple(fields)
    problems: list[Problem] = []
    if not isinstance(raw, Mapping):
        problems.append(Problem(place, f"must be an object of field values, not {_what(raw)}"))
        return {}, problems
    by_name = {f.name: f for f in fields}
    out: dict[str, Any] = {}
    unknown = [key for key in raw if key not in by_name]
    field_list = ", ".join(sorted(by_name)) if unknown else ""  # only a refusal needs it
    for index, key in enumerate(unknown):
        shown = preview(str(key))
        if index >= MAX_SUGGESTED_KEYS:
            # Past the first few, the plain fact: fuzzy matching costs time per key, and an
            # answer lists only the first problems anyway.
            problems.append(Problem(f"{place}.{shown}", "is not a field of this ruleset"))
            continue
        message = f"'{shown}' is not a field of this ruleset"
        close = difflib.get_close_matches(str(key), list(by_name), n=3, cutoff=0.6) \
            if len(str(key)) <= PREVIEW_CHARS else []
        if close:
            message += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        elif by_name:
            message += "; the fields are " + field_list
        problems.append(Problem(f"{place}.{shown}", message))
    for f in fields:
        here = f"{place}.{f.name}"
        value = raw.get(f.name)
        if value is None:  # absent and explicit null are the same thing
            if f.required:
                problems.append(Problem(here, "is required"))
            elif f.has_default:
                out[f.name] = f.default
            continue
        if f.type is FieldType.OBJECT:
            if not isinstance(value, Mapping):
                problems.append(Problem(here, f"must be an object (a group of fields), "
                                              f"not {_what(value)}"))
                continue
            nested, nested_problems = check_values(f.properties, value, here)
            problems.extend(nested_problems)
            out[f.name] = nested
            continue
        ok, normalized = _check_scalar(f, value, here, problems)
        if ok:
            out[f.name] = normalized
    return out, problems


def validate_input(ruleset: Ruleset, raw: Any) -> dict[str, Any]:
    """The input with defaults applied; raises InputInvalid naming every bad field."""
    values, problems = check_values(ruleset.inputs, raw, "input")
    if problems:
        raise InputInvalid(problems)
    return values


__all__ = ["MAX_SAFE_INTEGER", "check_values", "validate_input"]
