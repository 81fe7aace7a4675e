"""The normal form conditions compile to: tests combined by and/or, with negations
already pushed down to the tests."""

from __future__ import annotations

from typing import Any

Test = tuple[str, str, int]  # ("t", op, key, value) is spelled as (op, key, value)
Node = tuple[Any, ...]
TRUE: Node = ("true",)
FALSE: Node = ("false",)


def test_node(op: str, key: str, value: int) -> Node:
    return ("test", op, key, value)


def and_of(children: list[Node]) -> Node:
    flat: list[Node] = []
    for c in children:
        if c == FALSE:
            return FALSE
        if c == TRUE:
            continue
        for g in (c[1] if c[0] == "and" else (c,)):
            if g not in flat:
                flat.append(g)
    if not flat:
        return TRUE
    return flat[0] if len(flat) == 1 else ("and", tuple(flat))


def or_of(children: list[Node]) -> Node:
    flat: list[Node] = []
    for c in children:
        if c == TRUE:
            return TRUE
        if c == FALSE:
            continue
        for g in (c[1] if c[0] == "or" else (c,)):
            if g not in flat:
                flat.append(g)
    if not flat:
        return FALSE
    return flat[0] if len(flat) == 1 else ("or", tuple(flat))


def const_of(value: bool) -> Node:
    return TRUE if value else FALSE
