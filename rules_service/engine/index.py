"""The index in front of the engine: which shards an input can fire a rule in.

A compiled rule (one durable rule, a piece of a ruleset rule or table row) fires only when
every test of its top-level ``and`` holds on the encoded fact. The tests the index reads are
those on one fact key against a constant: ``==``, ``<``, ``<=``, ``>``, ``>=``, and an ``or``
of ``==`` tests on one key (a list cell, ``x in [...]``). Each such test allows the key a set
of integers (intervals), and the rule can fire only when the fact's value lies in it. The
index holds, per key, the sorted bounds of every rule's intervals and, between two bounds,
the rules whose intervals cover that stretch (an exact cell is a one-value interval, a
range cell or an operator a longer one, so both are found by the same bisect); an input's
candidates are the rules every key allows, and the fact is asserted only into the shards
holding a candidate.

The engine still decides every rule of those shards: the index only leaves out shards where
no rule can fire, because each left-out rule has a test that is false on the same integers
durable compares (the fact codes of encoding.py). A key the fact does not carry as an
integer allows every rule, and a test the index does not read (``!=``, nested ``or``,
``matches`` results under ``not``) never removes a rule.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rules_service.engine.normal_form import Node

LOWEST = -(2 ** 62)
HIGHEST = 2 ** 62
"""Beyond every fact code (codes and the absent markers are far inside)."""

MAX_INDEX_BITS = 64_000_000
"""A key whose bounds times rules pass this (8 MB of masks) is left out of the index."""
MAX_BOUND_STRETCHES = 2_000
"""Keys with more distinct stretches than this are not used for the work bound."""

Interval = tuple[int, int]  # inclusive
Constraints = dict[str, tuple[Interval, ...]]


def constraints(piece: Node) -> Constraints:
    """The values each fact key must take for the piece to fire, from its top-level tests."""
    out: Constraints = {}
    for part in piece[1] if piece[0] == "and" else (piece,):
        allowed = _allowed(part)
        if allowed is None:
            continue
        key, intervals = allowed
        out[key] = _intersect(out[key], intervals) if key in out else intervals
    return out


@lru_cache(maxsize=65_536)  # a table's rows repeat their cells' tests
def _allowed(node: Node) -> tuple[str, tuple[Interval, ...]] | None:
    if node[0] == "test":
        _, op, key, value = node
        if type(value) is not int:
            return None
        if op == "==":
            return key, ((value, value),)
        if op in ("<", "<="):
            return key, ((LOWEST, value - (op == "<")),)
        if op in (">", ">="):
            return key, ((value + (op == ">"), HIGHEST),)
        return None
    if node[0] == "or":
        tests = node[1]
        key = tests[0][2] if tests[0][0] == "test" else None
        if key is None or not all(t[0] == "test" and t[1] == "==" and t[2] == key
                                  and type(t[3]) is int for t in tests):
            return None
        return key, tuple((v, v) for v in sorted({t[3] for t in tests}))
    return None


def _intersect(a: Sequence[Interval], b: Sequence[Interval]) -> tuple[Interval, ...]:
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo <= hi:
                out.append((lo, hi))
    return tuple(sorted(out))


@dataclass(frozen=True)
class _KeyIndex:
    key: str
    starts: list[int]  # sorted; starts[0] is LOWEST
    masks: list[int]  # masks[i]: the rules allowed on starts[i] .. starts[i+1]-1


class ShardIndex:
    """Which shards can fire a rule for an encoded fact.

    ``rules`` lists each durable rule's ``[name, {key: ((lo, hi), ...)}]`` in order (the
    form index_wire sends to the workers), ``shard_of`` the shard each one sits in. Rules
    are bits of Python integers, so the candidates of a key are one bisect and of a fact
    one ``&`` per key.
    """

    def __init__(self, rules: Sequence[Sequence[Any]],
                 shard_of: Mapping[str, int], shards: int) -> None:
        self.everything = (1 << len(rules)) - 1
        self.shard_masks = [0] * shards
        self.shard_of_bit = [shard_of[name] for name, _ in rules]
        events: dict[str, dict[int, int]] = {}
        constrained: dict[str, int] = {}
        for i, (name, by_key) in enumerate(rules):
            bit = 1 << i
            self.shard_masks[shard_of[name]] |= bit
            for key, intervals in by_key.items():
                at = events.setdefault(key, {})
                constrained[key] = constrained.get(key, 0) | bit
                for lo, hi in intervals:  # disjoint: toggling at both ends marks each stretch
                    at[lo] = at.get(lo, 0) ^ bit
                    at[hi + 1] = at.get(hi + 1, 0) ^ bit
        self.keys: list[_KeyIndex] = []
        for key, at in sorted(events.items()):
            if len(at) * len(rules) > MAX_INDEX_BITS:
                continue  # too many distinct bounds for their rules: the key removes none
            free = self.everything & ~constrained[key]
            starts, masks, mask = [LOWEST], [free], 0
            for position in sorted(at):
                mask ^= at[position]
                if position == LOWEST:
                    masks[0] = mask | free
                else:
                    starts.append(position)
                    masks.append(mask | free)
            self.keys.append(_KeyIndex(key, starts, masks))

    def candidates(self, fact: Mapping[str, Any]) -> int:
        """The rules (as bits) whose indexed tests all hold on the fact."""
        found = self.everything
        for index in self.keys:
            value = fact.get(index.key)
            if type(value) is not int:
                continue  # not comparable here: the key removes no rule
            found &= index.masks[bisect_right(index.starts, value) - 1]
            if not found:
                break
        return found

    def shards(self, fact: Mapping[str, Any]) -> list[int]:
        """The shards holding a candidate rule, in order."""
        return sorted(self._reached(self.candidates(fact)))

    def most_rules_reached(self, rules_in: Sequence[int]) -> int:
        """An upper bound on the durable rules one fact is asserted against.

        A fact's candidates lie within the rules one key allows, for every key; so the
        shards any stretch of a key reaches bound them, and the smallest of those bounds
        over the keys holds for every fact.
        """
        bound = sum(rules_in)
        for masks in sorted((set(index.masks) for index in self.keys), key=len):
            if len(masks) > MAX_BOUND_STRETCHES:
                break  # the rest have more still; a looser bound is still a bound
            worst = 0
            for mask in masks:
                worst = max(worst, sum(rules_in[shard] for shard in self._reached(mask)))
                if worst >= bound:
                    break
            bound = min(bound, worst)
        return bound

    def _reached(self, found: int) -> list[int]:
        reached = []
        while found:  # one step per shard reached: its lowest candidate, then the rest of it
            shard = self.shard_of_bit[(found & -found).bit_length() - 1]
            reached.append(shard)
            found &= ~self.shard_masks[shard]
        return reached


def index_wire(rules: Sequence[tuple[str, Constraints]]) -> list[list[Any]]:
    """The constraints in a plain, picklable form for the worker processes (tuples of
    integers are already plain)."""
    return [[name, by_key] for name, by_key in rules]
