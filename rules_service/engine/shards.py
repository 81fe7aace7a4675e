"""Emitting durable rules from normal-form conditions, and packing them into shards.

A rule whose condition is too large for one durable rule is split into pieces (terms of
its disjunctive normal form); pieces are packed into shards, each within the limits of one
durable ruleset (rules, tests, fact keys and alpha stack entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules_service.engine.durable_limits import (
    CATCH_ALL,
    MAX_DURABLE_RULES,
    MAX_FACT_KEYS,
    MAX_LOGIC_NODES_PER_RULE,
    MAX_PIECES_PER_RULE,
    MAX_TESTS_PER_RULE,
    MAX_TESTS_TOTAL,
    SENTINEL_KEY,
    STACK_BUDGET,
    EngineCompileError,
)
from rules_service.engine.normal_form import TRUE, Node, and_of

_DURABLE_OP = {"==": None, "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def to_durable(node: Node) -> dict[str, Any]:
    kind = node[0]
    if kind == "test":
        _, op, key, value = node
        name = _DURABLE_OP[op]
        return {key: value} if name is None else {name: {key: value}}
    if kind in ("and", "or"):
        return {"$" + kind: [to_durable(c) for c in node[1]]}
    if kind == "true":
        return {SENTINEL_KEY: 1}
    raise EngineCompileError("internal: cannot emit a constant-false condition")


def _logic_nodes(node: Node) -> int:
    if node[0] in ("and", "or"):
        return 1 + sum(_logic_nodes(c) for c in node[1])
    return 0


def test_count(node: Node) -> int:
    if node[0] in ("and", "or"):
        return sum(test_count(c) for c in node[1])
    return 1


def _entry(node: Node) -> int:
    """Alpha nodes the node's first tests add under their parent when all are true."""
    if node[0] == "and":
        return _entry(node[1][0])
    if node[0] == "or":
        return sum(_entry(c) for c in node[1])
    return 1


def _deeper(node: Node, after: int) -> int:
    """Most stack entries left pending below the entry, on one path through the node.

    ``after`` is how many nodes each end of ``node`` pushes (what follows it in an ``and``,
    1 for the join node of an enclosing ``or``, 0 at the end of the rule). Mirrors
    durable's createAlpha: an ``and`` chains its parts, an ``or`` hangs each branch under the
    parent and links every branch end to one forward node.
    """
    if node[0] == "and":
        parts = node[1]
        follow = [_entry(c) for c in parts[1:]] + [after]
        return sum(_deeper(c, k) for c, k in zip(parts, follow, strict=True))
    if node[0] == "or":
        return max(_deeper(c, 1) for c in node[1]) + max(after - 1, 0)
    return max(after - 1, 0)


def stack_cost(node: Node) -> int:
    """An upper bound on durable's alpha stack entries one rule can hold while a fact is
    asserted, over every combination of true tests.

    handleAlpha pops a node and pushes its true children, so the entries pending at any
    moment are the unvisited children of the nodes on the current path. Charged to the
    rules whose nodes they are, each rule holds at most its entry nodes plus, on one path,
    every node's children but the one followed; summed over a shard's rules this bounds the
    stack whatever durable shares between rules.
    """
    if node[0] == "test" or node[0] == "and" and all(c[0] == "test" for c in node[1]):
        return 1  # one entry, then each test under the last (most table rows are this)
    return _entry(node) + _deeper(node, 0)


def _dnf(node: Node, limit: int) -> list[Node] | None:
    """Disjunctive normal form as a list of conjunctions, or None past ``limit`` terms."""
    if node[0] == "or":
        terms: list[Node] = []
        for c in node[1]:
            sub = _dnf(c, limit)
            if sub is None or len(terms) + len(sub) > limit:
                return None
            terms.extend(sub)
        return terms
    if node[0] == "and":
        acc: list[Node] = [TRUE]
        for c in node[1]:
            sub = _dnf(c, limit)
            if sub is None or len(acc) * len(sub) > limit:
                return None
            acc = [and_of([a, s]) for a in acc for s in sub]
        return acc
    return [node]


def _fits(node: Node) -> bool:
    return (_logic_nodes(node) <= MAX_LOGIC_NODES_PER_RULE
            and test_count(node) <= MAX_TESTS_PER_RULE
            and stack_cost(node) <= STACK_BUDGET)


def split_rule(node: Node, rule_id: str) -> list[Node]:
    """Pieces whose disjunction is ``node``, each small enough for one durable rule."""
    if _fits(node):
        return [node]
    pieces: list[Node] = []
    for part in (node[1] if node[0] == "or" else (node,)):
        if _fits(part):
            pieces.append(part)
            continue
        terms = _dnf(part, MAX_PIECES_PER_RULE)
        if terms is None or not all(_fits(t) for t in terms):
            raise EngineCompileError(
                f"rule {rule_id}: condition is too complex for the engine "
                f"(more than {MAX_LOGIC_NODES_PER_RULE} nested and/or groups)")
        pieces.extend(terms)
    if len(pieces) > MAX_PIECES_PER_RULE:
        raise EngineCompileError(
            f"rule {rule_id}: condition is too complex for the engine (it needs "
            f"{len(pieces)} engine rules; at most {MAX_PIECES_PER_RULE})")
    return pieces


def keys_of(node: Node) -> set[str]:
    if node[0] in ("and", "or"):
        return set().union(*(keys_of(c) for c in node[1]))
    if node[0] == "test":
        return {node[2]}
    return set()


CATCH_ALL_RULE = {"all": [{"m": {SENTINEL_KEY: 1}}], "run": CATCH_ALL}


@dataclass
class Packing:
    """The shard being filled; a piece that would break a limit starts the next one."""

    rules: dict[str, Any] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    tests: int = 0
    stack: int = 0

    def takes(self, tests: int, stack: int, keys: set[str]) -> bool:
        return (len(self.rules) + 1 < MAX_DURABLE_RULES
                and self.tests + tests <= MAX_TESTS_TOTAL
                and self.stack + stack <= STACK_BUDGET
                and len(self.keys | keys) + 2 <= MAX_FACT_KEYS)
