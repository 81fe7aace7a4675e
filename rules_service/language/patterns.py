"""Regular expressions as the rules language uses them: checked at load, searched with a timeout."""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

import regex

# The standard library's regular expression parser: private modules that recent typeshed
# releases no longer describe, so imported by name and used untyped.
sre_constants: Any = importlib.import_module("re._constants")
sre_parser: Any = importlib.import_module("re._parser")

PATTERN_TIMEOUT_SECONDS = 0.1
"""A pattern that takes longer than this on one value is stopped (catastrophic backtracking)."""

_FLAG_GROUP = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")
"""An inline flag group: ``(?m)`` (the whole pattern) or ``(?m:...)``, ``(?-m:...)`` (one group)."""


class PatternShapeError(ValueError):
    """The pattern with ``$`` as the end of the value does not read as the pattern did."""


@lru_cache(maxsize=4096)
def whole_value(pattern: str) -> str:
    """The pattern with ``$`` meaning the end of the value, as the guide documents.

    In Python's dialect ``$`` also matches before a trailing newline, so ``^CC-[0-9]{4}$``
    would accept ``"CC-1234\\n"``; every ``$`` that the parsed pattern reads as an end
    anchor outside multi-line mode becomes ``\\Z``. Multi-line mode is the parsed pattern's:
    a leading ``(?m)`` for the whole pattern, ``(?m:...)`` for one group (and ``(?-m:...)``
    turns it off for one group); ``(?m)`` inside a character class, after an escape or in
    a comment is not a flag. Raises PatternShapeError when the result would not read as the
    pattern does with only those anchors changed (never expected: it is checked, not trusted).
    """
    if "$" not in pattern:
        return pattern
    try:
        parsed = sre_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return pattern  # not a pattern at all: refused by regex_problem before it is used
    flags = parsed.state.flags
    rewritten = _rewrite(pattern, bool(flags & re.MULTILINE), bool(flags & re.VERBOSE))
    expected = _shape(parsed, bool(flags & re.MULTILINE), to_end_of_value=True)
    if _shape(sre_parser.parse(rewritten), False, to_end_of_value=False) != expected:
        raise PatternShapeError(pattern)
    return rewritten


def _rewrite(pattern: str, multiline: bool, verbose: bool) -> str:
    """Every end anchor ``$`` outside multi-line mode written as ``\\Z``; the rest as it was."""
    out: list[str] = []
    scopes = [(multiline, verbose)]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        in_multiline, in_verbose = scopes[-1]
        end = i + 1
        if ch == "\\":
            end = i + 2
        elif ch == "[":
            end = _class_end(pattern, i)
        elif ch == "#" and in_verbose:
            newline = pattern.find("\n", i)
            end = n if newline < 0 else newline + 1
        elif pattern.startswith("(?#", i):
            end = _skip_to_close(pattern, i + 3)
        elif ch == "(":
            flag_group = _FLAG_GROUP.match(pattern, i)
            if flag_group is None:
                scopes.append(scopes[-1])
            else:
                end = flag_group.end()
                if flag_group.group(3) == ":":
                    on, off = flag_group.group(1), flag_group.group(2) or ""
                    scopes.append((
                        (in_multiline or "m" in on) and "m" not in off,
                        (in_verbose or "x" in on) and "x" not in off,
                    ))
        elif ch == ")" and len(scopes) > 1:
            scopes.pop()
        elif ch == "$" and not in_multiline:
            out.append("\\Z")
            i = end
            continue
        out.append(pattern[i:end])
        i = end
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """The index just after the character class opening at start."""
    j = start + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):  # a ']' first in a class is a literal, not its end
        j += 1
    return _skip_to_close(pattern, j, "]")


def _skip_to_close(pattern: str, j: int, close: str = ")") -> int:
    """The index just after the first unescaped close at or after j."""
    n = len(pattern)
    while j < n and pattern[j] != close:
        j += 2 if pattern[j] == "\\" else 1
    return min(j + 1, n)


def _shape(items: Any, multiline: bool, to_end_of_value: bool) -> tuple[Any, ...]:
    """A parsed pattern as nested tuples; with to_end_of_value, its ``$`` as ``\\Z``
    wherever multi-line mode is off."""
    out: list[Any] = []
    for op, av in items:
        if op is sre_constants.AT and av is sre_constants.AT_END:
            if to_end_of_value and not multiline:
                av = sre_constants.AT_END_STRING
        elif op is sre_constants.SUBPATTERN:
            group, add, delete, sub = av
            inner = (multiline or bool(add & re.MULTILINE)) and not delete & re.MULTILINE
            av = (group, add, delete, _shape(sub, inner, to_end_of_value))
        else:
            av = _shape_value(av, multiline, to_end_of_value)
        out.append((op, av))
    return tuple(out)


def _shape_value(av: Any, multiline: bool, to_end_of_value: bool) -> Any:
    if isinstance(av, sre_parser.SubPattern):
        return _shape(av, multiline, to_end_of_value)
    if isinstance(av, (list, tuple)):
        return tuple(_shape_value(x, multiline, to_end_of_value) for x in av)
    return av


class PatternTimeout(Exception):
    """Searching a value with a pattern took longer than the timeout."""


def regex_problem(pattern: str) -> str | None:
    """Why a pattern is not a usable regular expression, or None when it is.

    It must compile with Python ``re`` (the reference evaluator's dialect) and with the
    ``regex`` module (which checks inputs with a timeout).
    """
    for compile_ in (re.compile, regex.compile):
        try:
            compile_(pattern)
            compile_(whole_value(pattern))
        except (re.error, regex.error) as exc:
            detail = getattr(exc, "msg", None) or str(exc)
            return f"the pattern {pattern!r} is not a valid regular expression: {detail}"
        except PatternShapeError:
            return (f"the pattern {pattern!r} uses $ in a way that cannot be read as the end"
                    " of the value: write \\Z for the end of the value")
        except (RecursionError, OverflowError, ValueError):
            return f"the pattern {pattern!r} is too complex"
    return None


def search(pattern: str, text: str, timeout: float = PATTERN_TIMEOUT_SECONDS) -> bool:
    """Whether the pattern is found anywhere in text; raises PatternTimeout when too slow."""
    try:
        return regex.search(whole_value(pattern), text, timeout=timeout) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None
