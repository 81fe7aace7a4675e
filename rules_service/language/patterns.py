"""Regular expressions as the rules language uses them: checked at load, searched with a timeout."""

from __future__ import annotations

import re

import regex

PATTERN_TIMEOUT_SECONDS = 0.1
"""A pattern that takes longer than this on one value is stopped (catastrophic backtracking)."""


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
        except (re.error, regex.error) as exc:
            detail = getattr(exc, "msg", None) or str(exc)
            return f"the pattern {pattern!r} is not a valid regular expression: {detail}"
        except (RecursionError, OverflowError, ValueError):
            return f"the pattern {pattern!r} is too complex"
    return None


def search(pattern: str, text: str, timeout: float = PATTERN_TIMEOUT_SECONDS) -> bool:
    """Whether the pattern is found anywhere in text; raises PatternTimeout when too slow."""
    try:
        return regex.search(pattern, text, timeout=timeout) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None
