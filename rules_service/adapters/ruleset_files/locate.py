"""Mapping a problem's place (``rules[2].when``) to its line and column in the file."""

from __future__ import annotations

import yaml

from rules_service.adapters.ruleset_files.checks import Found
from rules_service.adapters.ruleset_files.reading import Source, mark_position, parent_place
from rules_service.domain.problems import Problem


def index_in_scalar(source: Source, node: yaml.ScalarNode, line: int,
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


def locate(found: Found, source: Source | None) -> Problem:
    if source is None:
        message = found.message
        if found.at is not None:
            line, column = found.at
            message += f" (at line {line}, column {column} of the condition)" if line > 1 \
                else f" (at column {column} of the condition)"
        return Problem(found.place, message)
    place = found.place
    while place and place not in source.nodes:
        place = parent_place(place)
    if not place:
        return Problem(found.place, found.message)
    key, node = source.nodes[place]
    if found.at is not None and place == found.place and isinstance(node, yaml.ScalarNode):
        index = index_in_scalar(source, node, *found.at)
        if index is not None:
            return Problem(found.place, found.message, *source.position(index))
    use_key = key is not None and (not isinstance(node, yaml.ScalarNode) or place != found.place)
    return Problem(found.place, found.message,
                   *mark_position(key.start_mark if use_key and key else node.start_mark))


# -- building the ruleset -----------------------------------------------------------------
