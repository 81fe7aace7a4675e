"""Changing a ruleset file's thresholds the way the editor's form does, keeping the file.

The YAML is edited through ruamel.yaml's round-trip mode, which keeps comments, key order
and the column of each comment. Where ruamel cannot reproduce some other part of the file
exactly (it does not keep the padding inside ``{primary: a,   backup: b}``), only the
changed thresholds' lines of its output are taken, each at the line the file had it on.
Whatever the route, the result is read back with the file reader and must hold exactly the
old data with the new values, or nothing is changed and the field gets the problem.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RuamelError

from rules_service.adapters.ruleset_files.reading import parent_place, read_text
from rules_service.domain.problems import Problem

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def read_thresholds(text: str) -> dict[str, Any] | None:
    """The file's thresholds, or None when it cannot be read or has none."""
    data, _, _ = read_text(text, "<draft>")
    if not isinstance(data, Mapping) or not isinstance(data.get("thresholds"), Mapping):
        return None
    return dict(data["thresholds"])


def typed_value(key: str, typed: str, current: Any) -> tuple[Any, Problem | None]:
    """What a field's text means for a threshold whose value is now ``current``."""
    place, typed = f"thresholds.{key}", typed.strip()
    if isinstance(current, bool):
        if typed not in ("true", "false"):
            return None, Problem(place, "choose true or false")
        return typed == "true", None
    if isinstance(current, int | float):
        if not typed:
            return None, Problem(place, "enter a number; the threshold cannot be empty")
        if _INTEGER.fullmatch(typed):
            return int(typed), None
        if _DECIMAL.fullmatch(typed) and math.isfinite(float(typed)):
            return float(typed), None
        return None, Problem(place, f"{typed!r} is not a number; enter digits such as 800 "
                                    "or 0.5")
    return typed, None


def set_thresholds(text: str, typed: Mapping[str, str]) -> tuple[str, list[Problem]]:
    """The file with each threshold in ``typed`` set to the value its text means, and the
    problem of each field that could not be written (the file keeps its old value)."""
    before = read_thresholds(text)
    if before is None:
        return text, [Problem(f"thresholds.{key}", "the file below has no readable "
                                                   "thresholds; fix the file first")
                      for key in typed]
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key, raw in typed.items():
        if key not in before:
            problems.append(Problem(f"thresholds.{key}", "the file has no such threshold"))
            continue
        value, problem = typed_value(key, str(raw), before[key])
        if problem is not None:
            problems.append(problem)
        elif value != before[key] or type(value) is not type(before[key]):
            values[key] = value
    if not values:
        return text, problems
    edited = _rewrite(text, values)
    if edited is None:
        return text, problems + [
            Problem(f"thresholds.{key}", "the form cannot write this value into the file "
                                         "without changing its layout; edit it in the file")
            for key in values]
    return edited, problems


def _rewrite(text: str, values: Mapping[str, Any]) -> str | None:
    yaml = _yaml()
    try:
        doc = yaml.load(text)
        untouched = _dump(yaml, doc)
        original_lines = {key: doc["thresholds"].lc.key(key)[0] for key in values}
        for key, value in values.items():
            doc["thresholds"][key] = value
        dumped = _dump(yaml, doc)
        edited = dumped if untouched == text else _take_lines(text, dumped, original_lines)
    except (RuamelError, KeyError, AttributeError, TypeError, ValueError, IndexError):
        return None
    if edited is None:
        return None
    data, _, problems = read_text(edited, "<draft>")
    expected, _, _ = read_text(text, "<draft>")
    if problems or not isinstance(data, dict) or not isinstance(expected, dict):
        return None
    expected["thresholds"] = {**expected["thresholds"], **values}
    return edited if data == expected else None


def _dump(yaml: YAML, doc: Any) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _take_lines(text: str, edited: str, original_lines: Mapping[str, int]) -> str | None:
    """``text`` with each changed key's line replaced by that key's line in ``edited``."""
    new_doc = _yaml().load(edited)
    lines, new_lines = text.split("\n"), edited.split("\n")
    for key, at in original_lines.items():
        line = new_lines[new_doc["thresholds"].lc.key(key)[0]]
        if not line.lstrip().startswith(key):
            return None
        lines[at] = line
    return "\n".join(lines)


def place_lines(text: str, places: list[str]) -> dict[str, int]:
    """The 1-based line of each place (``tests[2]``) the file has (or of its nearest
    enclosing place)."""
    _, source, _ = read_text(text, "<draft>")
    if source is None:
        return {}
    found: dict[str, int] = {}
    for place in places:
        at = place
        while at and at not in source.nodes:
            at = parent_place(at)
        if at:
            key, node = source.nodes[at]
            found[place] = (key or node).start_mark.line + 1
    return found
