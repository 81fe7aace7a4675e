"""Compiles a validated Ruleset into a durable-rules definition plus a fact encoder.

Pure Python: this module never imports ``durable``, so it can be tested (and used to
reject rulesets the engine cannot run) without a worker process.

Why an encoding at all (measured on durable-rules 2.0.28):

- numbers: ``1e20`` or ``5e-324`` in a fact or rule fails to parse (error 204), so an input
  amount of 1e300 would crash the assertion; ``"1" == 1`` and ``true == 1`` hold in durable
  but not in Python;
- strings: durable compares C strings, so ``"a\\0b"`` and ``"a\\0c"`` are cut at the NUL;
- user field names such as ``sid`` or ``id`` carry meaning in durable;
- ``$nex``/``$ex`` spin forever in C, a fact that matches nothing raises, and deleting its
  state afterwards segfaults.

So every input field becomes one or two generated keys holding small integers only:
``f<i>`` (absent -> -1) and ``g<i>`` (absent -> a large number). A number is replaced by its
rank among the constants the ruleset compares that field with (``2*i+1`` for the i-th
constant, even numbers for the gaps), a string by its index in the field's literal table
(0 for any other string), a boolean by 1/0. Comparisons against constants keep their exact
Python meaning, and the absent-field rule of the language falls out of the choice of the
absent code: ``x > c`` reads ``f > c`` (-1 never passes), ``not (x > c)`` reads ``f <= c``
(-1 always passes), so ``not`` is pushed down to the atoms and ``$nex``/``$ex`` are never
needed. ``matches`` is decided in Python (the durable regex dialect differs) and fed in as
``m<k>`` = 1/0. Every fact also carries ``_e: 1``, matched by a catch-all rule, so no fact
is ever unmatched.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex

from rules_service.domain.ruleset import MAX_RULES, FieldType, InputField, Ruleset
from rules_service.engine.durable_limits import (
    ABSENT_HIGH,
    ABSENT_LOW,
    CATCH_ALL,
    MAX_DURABLE_RULES,
    MAX_FACT_KEYS,
    MAX_LOGIC_NODES_PER_RULE,
    MAX_PIECES_PER_RULE,
    MAX_STACK_ENTRIES,
    MAX_TESTS_PER_RULE,
    MAX_TESTS_TOTAL,
    SENTINEL_KEY,
    STACK_BUDGET,
    EncodeError,
    EngineCompileError,
)
from rules_service.engine.encoding import FactEncoder, FieldEncoding
from rules_service.engine.index import (
    HIGHEST,
    Constraints,
    ShardIndex,
    constraints,
    index_wire,
)
from rules_service.engine.normal_form import FALSE, Node, and_of, const_of, or_of, test_node
from rules_service.engine.shards import (
    CATCH_ALL_RULE,
    Packing,
    keys_of,
    split_rule,
    stack_cost,
    test_count,
    to_durable,
)
from rules_service.language.ast import (
    And,
    Compare,
    CompareOp,
    Exists,
    Expr,
    FieldRef,
    InList,
    Literal,
    Matches,
    Not,
    Operand,
    Or,
    ThresholdRef,
)
from rules_service.language.patterns import whole_value

__all__ = ["ABSENT_HIGH", "ABSENT_LOW", "CATCH_ALL", "MAX_DURABLE_RULES", "MAX_FACT_KEYS",
           "MAX_LOGIC_NODES_PER_RULE", "MAX_PIECES_PER_RULE", "MAX_RULES", "MAX_STACK_ENTRIES",
           "MAX_TESTS_PER_RULE", "MAX_TESTS_TOTAL", "SENTINEL_KEY", "STACK_BUDGET",
           "CompiledRuleset", "EncodeError", "EngineCompileError", "FactEncoder", "FieldEncoding",
           "MatchSpec", "Shard", "compile_ruleset", "stack_cost"]


@dataclass(frozen=True)
class MatchSpec:
    """A ``matches`` atom, decided in Python and fed to durable as ``m<k>``."""

    key: str
    path: tuple[str, ...]
    pattern: str
    rule_id: str


@dataclass(frozen=True)
class Shard:
    """One durable ruleset: a part of a compiled ruleset within every measured limit."""

    name: str  # durable ruleset name
    durable: dict[str, Any]  # durable rule name -> definition (catch-all included)
    keys: tuple[str, ...]  # the fact keys its rules test: its fact carries only these


@dataclass(frozen=True)
class CompiledRuleset:
    """Everything a worker needs: the durable shards and how to encode a fact."""

    key: str  # content hash of this compiled form
    name: str  # prefix of the shards' durable ruleset names
    shards: tuple[Shard, ...]
    rule_index: dict[str, int]  # durable rule name -> index into rule_ids
    rule_ids: tuple[str, ...]
    fields: tuple[tuple[int, tuple[str, ...], str, tuple[Any, ...], dict[str, int], bool, bool],
                  ...]
    matches: tuple[MatchSpec, ...]
    index: tuple[tuple[str, Constraints], ...] | None = None  # None: every shard, every fact
    work_per_input: int = 0  # most durable rules one input is asserted against

    @property
    def durable(self) -> dict[str, Any]:
        """Every shard's durable rules in one mapping (rule names are unique across shards)."""
        out: dict[str, Any] = {}
        for shard in self.shards:
            out.update(shard.durable)
        return out

    @property
    def engine_rules(self) -> int:
        """Durable rules over all shards, catch-alls included (the cost of one evaluation)."""
        return sum(len(s.durable) for s in self.shards)

    def to_wire(self) -> dict[str, Any]:
        """A plain, picklable form sent to worker processes."""
        return {
            "key": self.key,
            "name": self.name,
            "shards": [[s.name, s.durable, list(s.keys)] for s in self.shards],
            "rule_index": self.rule_index,
            "fields": [list(f) for f in self.fields],
            "matches": [[m.key, list(m.path), m.pattern, m.rule_id] for m in self.matches],
            "index": None if self.index is None else index_wire(self.index),
        }


def _field_types(inputs: tuple[InputField, ...], prefix: tuple[str, ...] = ()
                 ) -> dict[tuple[str, ...], FieldType]:
    out: dict[tuple[str, ...], FieldType] = {}
    for f in inputs:
        path = prefix + (f.name,)
        out[path] = f.type
        if f.properties:
            out.update(_field_types(f.properties, path))
    return out


_KIND = {FieldType.NUMBER: "number", FieldType.INTEGER: "number", FieldType.STRING: "string",
         FieldType.BOOLEAN: "boolean", FieldType.OBJECT: "object"}


class _Compiler:
    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.types = _field_types(ruleset.inputs)
        self.fields: dict[tuple[str, ...], FieldEncoding] = {}
        self.matches: list[MatchSpec] = []
        self.rule_id = ""
        # A table's rows share the conditions of their repeated cells (the same objects):
        # each is collected and put in normal form once (kept beside its id, so an id is
        # only ever matched to its own object).
        self.collected: dict[int, Expr] = {}
        self.atoms: dict[tuple[int, bool], tuple[Expr, Node]] = {}

    def field(self, ref: FieldRef) -> FieldEncoding:
        enc = self.fields.get(ref.path)
        if enc is None:
            ftype = self.types.get(ref.path)
            if ftype is None:
                raise EngineCompileError(f"rule {self.rule_id}: unknown field {ref.dotted}")
            enc = FieldEncoding(len(self.fields), ref.path, _KIND[ftype])
            self.fields[ref.path] = enc
        return enc

    def constant(self, node: Operand) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ThresholdRef):
            if node.name not in self.ruleset.thresholds:
                raise EngineCompileError(f"rule {self.rule_id}: unknown threshold {node.name}")
            return self.ruleset.thresholds[node.name]
        raise EngineCompileError(f"rule {self.rule_id}: comparing two fields is not supported")

    # First pass: collect constants per field so ranks are known before codes are assigned.
    def collect(self, expr: Expr) -> None:
        if isinstance(expr, Compare | InList):
            if self.collected.get(id(expr)) is expr:
                return
            self.collected[id(expr)] = expr
        where = f"rule {self.rule_id}"
        if isinstance(expr, And | Or):
            for e in expr.operands:
                self.collect(e)
        elif isinstance(expr, Not):
            self.collect(expr.operand)
        elif isinstance(expr, Exists | FieldRef):
            self.field(expr.field if isinstance(expr, Exists) else expr)
        elif isinstance(expr, Compare):
            left, right = expr.left, expr.right
            if isinstance(left, FieldRef) and isinstance(right, FieldRef):
                raise EngineCompileError(f"{where}: comparing two fields is not supported")
            if isinstance(left, FieldRef) or isinstance(right, FieldRef):
                ref, other = (left, right) if isinstance(left, FieldRef) else (right, left)
                enc = self.field(ref)  # type: ignore[arg-type]
                if expr.op not in (CompareOp.EQ, CompareOp.NE) and enc.kind != "number":
                    raise EngineCompileError(f"{where}: {enc.dotted} cannot be ordered")
                enc.add_constant(self.constant(other), where)
        elif isinstance(expr, InList):
            if isinstance(expr.operand, FieldRef):
                enc = self.field(expr.operand)
                for item in expr.items:
                    enc.add_constant(self.constant(item), where)
            else:
                for item in expr.items:
                    self.constant(item)
        elif isinstance(expr, Matches) and isinstance(expr.operand, FieldRef):
            self.field(expr.operand)

    # Second pass: the normal form. `positive` False means the atom sits under a `not`.
    def nnf(self, expr: Expr, positive: bool = True) -> Node:
        if isinstance(expr, Not):
            return self.nnf(expr.operand, not positive)
        if isinstance(expr, And | Or):
            parts = [self.nnf(e, positive) for e in expr.operands]
            conj = isinstance(expr, And) == positive
            return and_of(parts) if conj else or_of(parts)
        if isinstance(expr, Literal):
            return const_of((expr.value is True) == positive)
        if isinstance(expr, ThresholdRef):
            return const_of((self.ruleset.thresholds.get(expr.name) is True) == positive)
        if isinstance(expr, FieldRef):
            enc = self.field(expr)
            if enc.kind != "boolean":
                return const_of(not positive)
            return test_node("==" if positive else "!=", enc.low_key, 1)
        if isinstance(expr, Exists):
            enc = self.field(expr.field)
            return test_node(">=" if positive else "<", enc.low_key, 0)
        if isinstance(expr, Compare | InList):
            known = self.atoms.get((id(expr), positive))
            if known is not None and known[0] is expr:
                return known[1]
            node = self.compare(expr, positive) if isinstance(expr, Compare) \
                else self.in_list(expr, positive)
            self.atoms[(id(expr), positive)] = (expr, node)
            return node
        if isinstance(expr, Matches):
            return self.match_atom(expr, positive)
        raise EngineCompileError(f"rule {self.rule_id}: not a condition: {expr!r}")

    def compare(self, expr: Compare, positive: bool) -> Node:
        left, right, op = expr.left, expr.right, expr.op
        if not isinstance(left, FieldRef) and not isinstance(right, FieldRef):
            a, b = self.constant(left), self.constant(right)
            try:
                value = _py_compare(op, a, b)
            except TypeError as exc:
                raise EngineCompileError(f"rule {self.rule_id}: {exc}") from None
            return const_of(value == positive)
        if not isinstance(left, FieldRef):
            left, right, op = right, left, op.flipped()
        enc = self.field(left)  # type: ignore[arg-type]
        c = enc.constant_code(self.constant(right))
        return _atom(op.value, enc, c, positive)

    def in_list(self, expr: InList, positive: bool) -> Node:
        # `x not in L` is `exists(x) and not (x in L)`; its negation is `not exists or x in L`.
        if not isinstance(expr.operand, FieldRef):
            value = self.constant(expr.operand)
            hit = any(self.constant(i) == value for i in expr.items)
            return const_of((hit != expr.negated) == positive)
        enc = self.field(expr.operand)
        codes = sorted({enc.constant_code(self.constant(i)) for i in expr.items})
        key = enc.low_key
        found = or_of([test_node("==", key, c) for c in codes])
        not_found = and_of([test_node("!=", key, c) for c in codes])  # absent (-1) passes too
        present = test_node(">=", key, 0)
        if not expr.negated:
            return found if positive else not_found
        return and_of([present, not_found]) if positive else or_of([test_node("<", key, 0), found])

    def match_atom(self, expr: Matches, positive: bool) -> Node:
        if not isinstance(expr.operand, FieldRef):
            value = self.constant(expr.operand)
            hit = isinstance(value, str) and \
                regex.search(whole_value(expr.pattern), value) is not None
            return const_of(hit == positive)
        self.field(expr.operand)
        for m in self.matches:
            if m.path == expr.operand.path and m.pattern == expr.pattern:
                spec = m
                break
        else:
            spec = MatchSpec(f"m{len(self.matches)}", expr.operand.path, expr.pattern,
                             self.rule_id)
            self.matches.append(spec)
        return test_node("==" if positive else "!=", spec.key, 1)


def _atom(op: str, enc: FieldEncoding, c: int, positive: bool) -> Node:
    """One comparison of a field with a constant code, absent semantics included."""
    lo, hi = enc.low_key if op in ("==", "!=", ">", ">=") else None, None
    if op in ("<", "<="):
        hi = enc.high_key
    if op == "==":
        return test_node("==" if positive else "!=", lo, c)  # type: ignore[arg-type]
    if op == "!=":
        if positive:  # present and different
            return and_of([test_node(">=", lo, 0), test_node("!=", lo, c)])  # type: ignore[arg-type]
        return and_of([test_node("<=", lo, c), test_node(">=", enc.high_key, c)])  # type: ignore[arg-type]
    if op in (">", ">="):
        neg = "<=" if op == ">" else "<"
        return test_node(op if positive else neg, lo, c)  # type: ignore[arg-type]
    neg = ">=" if op == "<" else ">"
    return test_node(op if positive else neg, hi, c)  # type: ignore[arg-type]


def _py_compare(op: CompareOp, a: Any, b: Any) -> bool:
    return bool({"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b,
                 "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}[op.value]())


# -- compiling ------------------------------------------------------------------------------


_Piece = tuple[int, str, Node, Constraints]  # rule position, durable rule name, node, index


def _pieces(comp: _Compiler, ruleset: Ruleset) -> list[_Piece]:
    """Every durable rule of the ruleset: each rule's normal form, split to fit."""
    out: list[_Piece] = []
    for i, rule in enumerate(ruleset.rules):
        comp.rule_id = rule.id
        node = comp.nnf(rule.condition)
        if node == FALSE:
            continue
        for j, piece in enumerate(split_rule(node, rule.id)):
            out.append((i, f"r{i}" if j == 0 else f"r{i}_{j}", piece, constraints(piece)))
    return out


def _signature(pieces: list[_Piece]) -> Callable[[_Piece], tuple[int, ...]]:
    """Orders pieces by the lowest value each indexed key allows them (any value last)."""
    keys = sorted({key for *_, allowed in pieces for key in allowed})

    def signature(piece: _Piece) -> tuple[int, ...]:
        allowed = piece[3]
        return tuple(allowed[k][0][0] if allowed.get(k) else HIGHEST for k in keys)
    return signature


def _pack(pieces: list[_Piece], ruleset: Ruleset) -> tuple[list[Packing], dict[str, int]]:
    """The pieces in shards, each within durable's limits; and each piece's shard."""
    packs: list[Packing] = [Packing()]
    shard_of: dict[str, int] = {}
    for i, name, piece, _ in pieces:
        tests, stack, keys = test_count(piece), stack_cost(piece), keys_of(piece)
        if not packs[-1].takes(tests, stack, keys):
            packs.append(Packing())
        if not packs[-1].takes(tests, stack, keys):
            raise EngineCompileError(f"rule {ruleset.rules[i].id}: condition is too large for "
                                     "the engine; split it into several rules")
        pack = packs[-1]
        pack.rules[name] = {"all": [{"m": to_durable(piece)}], "run": name}
        pack.keys |= keys
        pack.tests += tests
        pack.stack += stack
        shard_of[name] = len(packs) - 1
    return packs, shard_of


_RECENT: dict[tuple[int, bool], tuple[weakref.ref[Ruleset], CompiledRuleset]] = {}
_RECENT_LOCK = threading.Lock()


def compile_ruleset(ruleset: Ruleset, index: bool = True) -> CompiledRuleset:
    """Compiles a validated ruleset into shards; raises EngineCompileError when durable
    cannot run it. With ``index``, each input is asserted only into the shards where a rule
    can fire (engine/index.py); without, into every shard.

    A ruleset object is compiled once while it lives: loading a file compiles it to refuse
    what the engine cannot run, and the engine pool then gets the same compiled form (a
    proposal's tests, its first evaluations) instead of compiling a big table again.
    """
    key = (id(ruleset), index)
    with _RECENT_LOCK:
        entry = _RECENT.get(key)
    if entry is not None and entry[0]() is ruleset:
        return entry[1]
    compiled = _compile(ruleset, index)
    with _RECENT_LOCK:
        _RECENT[key] = (weakref.ref(ruleset), compiled)
    weakref.finalize(ruleset, _forget, key, compiled)
    return compiled


def _forget(key: tuple[int, bool], compiled: CompiledRuleset) -> None:
    with _RECENT_LOCK:
        if key in _RECENT and _RECENT[key][1] is compiled:
            del _RECENT[key]


def _compile(ruleset: Ruleset, index: bool) -> CompiledRuleset:
    if len(ruleset.rules) > MAX_RULES:
        raise EngineCompileError(f"the ruleset has {len(ruleset.rules)} rules and rows; "
                                 f"a ruleset may hold at most {MAX_RULES:,}")
    comp = _Compiler(ruleset)
    for rule in ruleset.rules:
        comp.rule_id = rule.id
        comp.collect(rule.condition)
    for enc in comp.fields.values():
        enc.finish()
    pieces = _pieces(comp, ruleset)
    if index:  # rules that share an indexed test side by side: an input reaches few shards
        pieces.sort(key=_signature(pieces))
    packs, shard_of = _pack(pieces, ruleset)
    rule_index = {name: i for i, name, _, _ in pieces}
    indexed = [(name, allowed) for _, name, _, allowed in pieces]
    fields = tuple(
        (e.index, e.path, e.kind, tuple(e.numbers), dict(e.strings), e.low, e.high)
        for e in comp.fields.values())
    body = {"shards": [[p.rules, sorted(p.keys)] for p in packs],
            "fields": [list(f) for f in fields],
            "matches": [[m.key, list(m.path), m.pattern] for m in comp.matches]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=repr).encode()).hexdigest()
    name = f"rs{digest[:20]}"
    shards = tuple(
        Shard(name=f"{name}s{n}", durable={**p.rules, CATCH_ALL: dict(CATCH_ALL_RULE)},
              keys=tuple(sorted(p.keys - {SENTINEL_KEY})))
        for n, p in enumerate(packs))
    rules_in = [len(s.durable) for s in shards]
    work = sum(rules_in)
    if index:
        work = ShardIndex(index_wire(indexed), shard_of, len(shards)).most_rules_reached(rules_in)
    return CompiledRuleset(
        key=digest, name=name, shards=shards, rule_index=rule_index,
        rule_ids=tuple(r.id for r in ruleset.rules), fields=fields,
        matches=tuple(comp.matches), index=tuple(indexed) if index else None,
        work_per_input=work)
