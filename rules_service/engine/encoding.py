"""The fact encoding: each input field as small integers a durable rule can compare.

``FieldEncoding`` is built while a ruleset compiles (it learns the constants a field is
compared with); ``FactEncoder`` rebuilds the encodings from a compiled ruleset's wire form
and turns one input into a durable fact (it runs in the worker).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import regex

from rules_service.engine.durable_limits import (
    ABSENT_HIGH,
    ABSENT_LOW,
    SENTINEL_KEY,
    EncodeError,
    EngineCompileError,
)
from rules_service.language.evaluator import is_absent, lookup
from rules_service.language.patterns import whole_value


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
