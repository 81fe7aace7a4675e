"""Regular expressions as the rules language uses them: checked at load, searched with a timeout."""

from __future__ import annotations

import re

import regex

PATTERN_TIMEOUT_SECONDS = 0.1
"""A pattern that takes longer than this on one value is stopped (catastrophic backtracking)."""


_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]")


def whole_value(pattern: str) -> str:
    """The pattern with ``$`` meaning the end of the value, as the guide documents.

    In Python's dialect ``$`` also matches before a trailing newline, so ``^CC-[0-9]{4}$``
    would accept ``"CC-1234\\n"``; every ``$`` outside a character class and not escaped
    becomes ``\\Z``. A pattern that asks for multi-line mode (``(?m)``) keeps its ``$``.
    """
    if "$" not in pattern or _MULTILINE.search(pattern):
        return pattern
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            # A ']' first in a class (after an optional '^') is a literal, not its end.
            if i + 1 < n and pattern[i + 1] == "^":
                out.append("^")
                i += 1
            if i + 1 < n and pattern[i + 1] == "]":
                out.append("]")
                i += 1
        elif ch == "$":
            out.append("\\Z")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


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
        except (RecursionError, OverflowError, ValueError):
            return f"the pattern {pattern!r} is too complex"
    return None


def search(pattern: str, text: str, timeout: float = PATTERN_TIMEOUT_SECONDS) -> bool:
    """Whether the pattern is found anywhere in text; raises PatternTimeout when too slow."""
    try:
        return regex.search(whole_value(pattern), text, timeout=timeout) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None
