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
import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import regex

from rules_service.domain.ruleset import MAX_RULES, FieldType, InputField, Ruleset
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
from rules_service.language.evaluator import is_absent, lookup
from rules_service.language.patterns import whole_value

ABSENT_LOW = -1
ABSENT_HIGH = 1_000_000_000
CATCH_ALL = "_e"
SENTINEL_KEY = "_e"

# Limits measured on durable-rules 2.0.28, with a margin: more than 15 $and/$or nodes in one
# rule fails (error 113); ~250 keys in a fact fails (302); ~510 tests in one rule overflows the
# stack (303) or hangs; 256 rules misfire silently and ~300 fail (108); 100 rules of 24 tests
# each overflow the stack at assertion time (303). These bound ONE durable ruleset (a shard);
# a ruleset larger than that is split into as many shards as it needs.
MAX_LOGIC_NODES_PER_RULE = 15
MAX_TESTS_PER_RULE = 200
MAX_DURABLE_RULES = 200
MAX_TESTS_TOTAL = 1000
MAX_FACT_KEYS = 200
# durable walks its alpha network with a fixed stack of 64 entries (events.c, handleAlpha,
# MAX_STACK_SIZE): every true test pushes its node, so 64 rules all true at once fail with
# error 303. Each shard is bounded by the worst case (every test true), see _stack_cost; the
# catch-all rule takes one more entry.
MAX_STACK_ENTRIES = 64
STACK_BUDGET = 56
# How far one rule may be split (into the terms of its disjunctive normal form) to fit.
MAX_PIECES_PER_RULE = 1024

_DURABLE_OP = {"==": None, "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


class EngineCompileError(ValueError):
    """The ruleset cannot be run by the durable engine (too large or not well typed)."""


class EncodeError(ValueError):
    """An input value cannot be encoded for the engine (wrong type, NaN)."""


# -- the normal form: tests combined by and/or, negations already pushed to the tests --------

Test = tuple[str, str, int]  # ("t", op, key, value) is spelled as (op, key, value)
Node = tuple[Any, ...]
TRUE: Node = ("true",)
FALSE: Node = ("false",)


def _test(op: str, key: str, value: int) -> Node:
    return ("test", op, key, value)


def _and(children: list[Node]) -> Node:
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


def _or(children: list[Node]) -> Node:
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


def _const(value: bool) -> Node:
    return TRUE if value else FALSE


# -- field encodings -----------------------------------------------------------------------


@dataclass
class FieldEncoding:
    """How one input field is turned into generated keys of the fact."""

    index: int
    path: tuple[str, ...]
    kind: str  # number | string | boolean | object
    numbers: list[int | float] = field(default_factory=list)
    strings: dict[str, int] = field(default_factory=dict)
    low: bool = False  # f<i> is used
    high: bool = False  # g<i> is used

    @property
    def low_key(self) -> str:
        """Key holding the code, -1 when absent."""
        self.low = True
        return f"f{self.index}"

    @property
    def high_key(self) -> str:
        """Key holding the code, a large number when absent."""
        self.high = True
        return f"g{self.index}"

    def add_constant(self, value: Any, where: str) -> None:
        """Records a constant the field is compared with (type checked)."""
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EngineCompileError(f"{where}: {self.dotted} is a number, got {value!r}")
            if isinstance(value, float) and math.isnan(value):
                raise EngineCompileError(f"{where}: NaN is not a comparable constant")
            self.numbers.append(value)
        elif self.kind == "string":
            if not isinstance(value, str):
                raise EngineCompileError(f"{where}: {self.dotted} is a string, got {value!r}")
            self.strings.setdefault(value, len(self.strings) + 1)
        elif self.kind == "boolean":
            if not isinstance(value, bool):
                raise EngineCompileError(f"{where}: {self.dotted} is a boolean, got {value!r}")
        else:
            raise EngineCompileError(f"{where}: {self.dotted} is an object and cannot be compared")

    def finish(self) -> None:
        """Sorts the numeric constants once every rule has been seen."""
        unique: list[int | float] = []
        for v in sorted(self.numbers):
            if not unique or unique[-1] != v:
                unique.append(v)
        self.numbers = unique

    def constant_code(self, value: Any) -> int:
        """The code of a constant (already added)."""
        return self.code(value)

    def code(self, value: Any) -> int:
        """The code of a present value; raises EncodeError when it has the wrong type."""
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EncodeError(f"{self.dotted} must be a number, got {type(value).__name__}")
            if isinstance(value, float) and math.isnan(value):
                raise EncodeError(f"{self.dotted} is NaN")
            i = bisect_left(self.numbers, value)
            if i < len(self.numbers) and self.numbers[i] == value:
                return 2 * i + 1
            return 2 * i
        if self.kind == "string":
            if not isinstance(value, str):
                raise EncodeError(f"{self.dotted} must be a string, got {type(value).__name__}")
            return self.strings.get(value, 0)
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise EncodeError(f"{self.dotted} must be a boolean, got {type(value).__name__}")
            return 1 if value else 0
        return 0

    @property
    def dotted(self) -> str:
        """The field's name as written."""
        return ".".join(self.path)


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
            return _and(parts) if conj else _or(parts)
        if isinstance(expr, Literal):
            return _const((expr.value is True) == positive)
        if isinstance(expr, ThresholdRef):
            return _const((self.ruleset.thresholds.get(expr.name) is True) == positive)
        if isinstance(expr, FieldRef):
            enc = self.field(expr)
            if enc.kind != "boolean":
                return _const(not positive)
            return _test("==" if positive else "!=", enc.low_key, 1)
        if isinstance(expr, Exists):
            enc = self.field(expr.field)
            return _test(">=" if positive else "<", enc.low_key, 0)
        if isinstance(expr, Compare):
            return self.compare(expr, positive)
        if isinstance(expr, InList):
            return self.in_list(expr, positive)
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
            return _const(value == positive)
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
            return _const((hit != expr.negated) == positive)
        enc = self.field(expr.operand)
        codes = sorted({enc.constant_code(self.constant(i)) for i in expr.items})
        key = enc.low_key
        found = _or([_test("==", key, c) for c in codes])
        not_found = _and([_test("!=", key, c) for c in codes])  # absent (-1) passes too
        present = _test(">=", key, 0)
        if not expr.negated:
            return found if positive else not_found
        return _and([present, not_found]) if positive else _or([_test("<", key, 0), found])

    def match_atom(self, expr: Matches, positive: bool) -> Node:
        if not isinstance(expr.operand, FieldRef):
            value = self.constant(expr.operand)
            hit = isinstance(value, str) and \
                regex.search(whole_value(expr.pattern), value) is not None
            return _const(hit == positive)
        self.field(expr.operand)
        for m in self.matches:
            if m.path == expr.operand.path and m.pattern == expr.pattern:
                spec = m
                break
        else:
            spec = MatchSpec(f"m{len(self.matches)}", expr.operand.path, expr.pattern,
                             self.rule_id)
            self.matches.append(spec)
        return _test("==" if positive else "!=", spec.key, 1)


def _atom(op: str, enc: FieldEncoding, c: int, positive: bool) -> Node:
    """One comparison of a field with a constant code, absent semantics included."""
    lo, hi = enc.low_key if op in ("==", "!=", ">", ">=") else None, None
    if op in ("<", "<="):
        hi = enc.high_key
    if op == "==":
        return _test("==" if positive else "!=", lo, c)  # type: ignore[arg-type]
    if op == "!=":
        if positive:  # present and different
            return _and([_test(">=", lo, 0), _test("!=", lo, c)])  # type: ignore[arg-type]
        return _and([_test("<=", lo, c), _test(">=", enc.high_key, c)])  # type: ignore[arg-type]
    if op in (">", ">="):
        neg = "<=" if op == ">" else "<"
        return _test(op if positive else neg, lo, c)  # type: ignore[arg-type]
    neg = ">=" if op == "<" else ">"
    return _test(op if positive else neg, hi, c)  # type: ignore[arg-type]


def _py_compare(op: CompareOp, a: Any, b: Any) -> bool:
    return bool({"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b,
                 "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}[op.value]())


# -- emitting durable rules -------------------------------------------------------------------


def _to_durable(node: Node) -> dict[str, Any]:
    kind = node[0]
    if kind == "test":
        _, op, key, value = node
        name = _DURABLE_OP[op]
        return {key: value} if name is None else {name: {key: value}}
    if kind in ("and", "or"):
        return {"$" + kind: [_to_durable(c) for c in node[1]]}
    if kind == "true":
        return {SENTINEL_KEY: 1}
    raise EngineCompileError("internal: cannot emit a constant-false condition")


def _logic_nodes(node: Node) -> int:
    if node[0] in ("and", "or"):
        return 1 + sum(_logic_nodes(c) for c in node[1])
    return 0


def _tests(node: Node) -> int:
    if node[0] in ("and", "or"):
        return sum(_tests(c) for c in node[1])
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


def _stack_cost(node: Node) -> int:
    """An upper bound on durable's alpha stack entries one rule can hold while a fact is
    asserted, over every combination of true tests.

    handleAlpha pops a node and pushes its true children, so the entries pending at any
    moment are the unvisited children of the nodes on the current path. Charged to the
    rules whose nodes they are, each rule holds at most its entry nodes plus, on one path,
    every node's children but the one followed; summed over a shard's rules this bounds the
    stack whatever durable shares between rules.
    """
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
            acc = [_and([a, s]) for a in acc for s in sub]
        return acc
    return [node]


def _fits(node: Node) -> bool:
    return (_logic_nodes(node) <= MAX_LOGIC_NODES_PER_RULE
            and _tests(node) <= MAX_TESTS_PER_RULE
            and _stack_cost(node) <= STACK_BUDGET)


def _split(node: Node, rule_id: str) -> list[Node]:
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


def _keys_of(node: Node) -> set[str]:
    if node[0] in ("and", "or"):
        return set().union(*(_keys_of(c) for c in node[1]))
    if node[0] == "test":
        return {node[2]}
    return set()


_CATCH_ALL_RULE = {"all": [{"m": {SENTINEL_KEY: 1}}], "run": CATCH_ALL}


@dataclass
class _Packing:
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


def compile_ruleset(ruleset: Ruleset) -> CompiledRuleset:
    """Compiles a validated ruleset into shards; raises EngineCompileError when durable
    cannot run it."""
    if len(ruleset.rules) > MAX_RULES:
        raise EngineCompileError(f"the ruleset has {len(ruleset.rules)} rules and rows; "
                                 f"a ruleset may hold at most {MAX_RULES:,}")
    comp = _Compiler(ruleset)
    for rule in ruleset.rules:
        comp.rule_id = rule.id
        comp.collect(rule.condition)
    for enc in comp.fields.values():
        enc.finish()
    rule_index: dict[str, int] = {}
    packs: list[_Packing] = [_Packing()]
    for i, rule in enumerate(ruleset.rules):
        comp.rule_id = rule.id
        node = comp.nnf(rule.condition)
        if node == FALSE:
            continue
        for j, piece in enumerate(_split(node, rule.id)):
            name = f"r{i}" if j == 0 else f"r{i}_{j}"
            tests, stack, keys = _tests(piece), _stack_cost(piece), _keys_of(piece)
            if not packs[-1].takes(tests, stack, keys):
                packs.append(_Packing())
            if not packs[-1].takes(tests, stack, keys):
                raise EngineCompileError(f"rule {rule.id}: condition is too large for the "
                                         "engine; split it into several rules")
            pack = packs[-1]
            pack.rules[name] = {"all": [{"m": _to_durable(piece)}], "run": name}
            pack.keys |= keys
            pack.tests += tests
            pack.stack += stack
            rule_index[name] = i
    fields = tuple(
        (e.index, e.path, e.kind, tuple(e.numbers), dict(e.strings), e.low, e.high)
        for e in comp.fields.values())
    body = {"shards": [[p.rules, sorted(p.keys)] for p in packs],
            "fields": [list(f) for f in fields],
            "matches": [[m.key, list(m.path), m.pattern] for m in comp.matches]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=repr).encode()).hexdigest()
    name = f"rs{digest[:20]}"
    shards = tuple(
        Shard(name=f"{name}s{n}", durable={**p.rules, CATCH_ALL: dict(_CATCH_ALL_RULE)},
              keys=tuple(sorted(p.keys - {SENTINEL_KEY})))
        for n, p in enumerate(packs))
    return CompiledRuleset(
        key=digest, name=name, shards=shards, rule_index=rule_index,
        rule_ids=tuple(r.id for r in ruleset.rules), fields=fields,
        matches=tuple(comp.matches))


# -- encoding one input as a fact (runs in the worker) ------------------------------------------


class FactEncoder:
    """Turns an input into a durable fact for one compiled ruleset (from its wire form)."""

    def __init__(self, wire: Mapping[str, Any], search: Any = None):
        self.fields = []
        for index, path, kind, numbers, strings, low, high in wire["fields"]:
            enc = FieldEncoding(index, tuple(path), kind, list(numbers), dict(strings))
            self.fields.append((enc, f"f{index}" if low else None, f"g{index}" if high else None))
        self.matches = [(key, tuple(path), pattern) for key, path, pattern, *_ in wire["matches"]]
        # search(pattern, text) -> bool; injected so the worker can add a regex timeout.
        self.search = search or (lambda p, t: regex.search(whole_value(p), t) is not None)

    def encode(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The fact for ``data``; raises EncodeError for a value the engine cannot take."""
        fact: dict[str, Any] = {SENTINEL_KEY: 1}
        for enc, low, high in self.fields:
            value = lookup(data, enc.path)
            if is_absent(value):
                if low:
                    fact[low] = ABSENT_LOW
                if high:
                    fact[high] = ABSENT_HIGH
                continue
            code = enc.code(value)
            if low:
                fact[low] = code
            if high:
                fact[high] = code
        for key, path, pattern in self.matches:
            value = lookup(data, path)
            hit = isinstance(value, str) and bool(self.search(pattern, value))
            fact[key] = 1 if hit else 0
        return fact
