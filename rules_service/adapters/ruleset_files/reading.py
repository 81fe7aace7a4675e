"""Reading ruleset text (YAML or JSON) into data, with a map from each place to its node.

Only PyYAML's safe loader is used; nothing in a file is ever executed. Every place
(``rules[2].when``) is recorded with its key and value nodes, so a problem found later can
be shown at its line and column.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import yaml

from rules_service.domain.problems import Problem

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Source:
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


def parent_place(place: str) -> str:
    if place.endswith("]"):
        return place[: place.rindex("[")]
    return place.rsplit(".", 1)[0] if "." in place else ""


def mark_position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _walk(node: yaml.Node, place: str, key: yaml.Node | None, seen: set[int],
          nodes: dict[str, tuple[yaml.Node | None, yaml.Node]], problems: list[Problem]) -> None:
    if id(node) in seen:
        # PyYAML hands out the anchored node itself for an alias.
        problems.append(Problem(place, "anchors and aliases (& and *) are not supported in "
                                       "ruleset files; write the value out",
                                *mark_position((key or node).start_mark)))
        return
    seen.add(id(node))
    nodes[place] = (key, node)
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                problems.append(Problem(place, "merge keys (<<) are not supported in ruleset "
                                               "files; write the settings out",
                                        *mark_position(k.start_mark)))
                continue
            name = k.value if isinstance(k, yaml.ScalarNode) else "?"
            child = _join(place, name)
            if name in first_line:
                problems.append(Problem(child, f"'{name}' is written twice here (first on line "
                                               f"{first_line[name]}); only the last one would "
                                               "count, so remove one",
                                        *mark_position(k.start_mark)))
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


def character_problem(text: str, index: int) -> Problem:
    char = text[index]
    kind = {"Cc": "a control character", "Cs": "half of a surrogate pair"}.get(
        unicodedata.category(char), "a character YAML does not allow")
    return Problem("", f"the file holds U+{ord(char):04X} ({kind}), which ruleset files "
                       "cannot contain; remove it", *_position(text, index))


# Contexts whose mark is where the mistake is: YAML notices a key without its ':', an
# unclosed bracket or an unclosed quote only at the next token, often on the next line.
_CAUSE_CONTEXTS = ("while scanning a simple key", "while parsing a flow",
                   "while scanning a quoted scalar")


def _cause_mark(exc: yaml.YAMLError) -> yaml.Mark | None:
    """The mark of the place that holds the mistake."""
    context = getattr(exc, "context", None) or ""
    context_mark = getattr(exc, "context_mark", None)
    if context_mark is not None and context.startswith(_CAUSE_CONTEXTS):
        return context_mark
    return getattr(exc, "problem_mark", None) or context_mark


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError) and 0 <= exc.position < len(text):
        return character_problem(text, exc.position)
    mark = _cause_mark(exc)
    detail = getattr(exc, "problem", None) or str(exc)
    hint = ""
    if "could not find expected ':'" in detail:
        hint = " (a name without the ':' after it?)"
    elif "mapping values are not allowed" in detail:
        hint = " (a ':' followed by a space inside a value? put the value in quotes)"
    elif "'\\t'" in detail or "tab" in detail:
        hint = " (indent with spaces, not tabs)"
    elif "could not determine a constructor" in detail:
        hint = " (tags such as !!python are not allowed)"
    line, column = mark_position(mark) if mark is not None else (None, None)
    return Problem("", f"the file is not valid YAML: {detail}{hint}", line, column)


def _compose(text: str) -> tuple[Any, Source | None, list[Problem]]:
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
    return data, Source(text, nodes, starts), problems


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


def read_text(text: str, source: str) -> tuple[Any, Source | None, list[Problem]]:
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
