"""Loading a ruleset file, text or parsed definition: read, check, locate, build.

Every problem is listed at once, each at its line and column when the text is known.
"""

from __future__ import annotations

import contextlib
import gc
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rules_service.adapters.ruleset_files.build import build_ruleset, canonical_definition
from rules_service.adapters.ruleset_files.checks import Checker, Found
from rules_service.adapters.ruleset_files.format import describe, load_structure
from rules_service.adapters.ruleset_files.locate import locate
from rules_service.adapters.ruleset_files.reading import Source, character_problem, read_text
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import MAX_RULES, Ruleset
from rules_service.engine.compiler import EngineCompileError, compile_ruleset

_PAUSE_LOCK = threading.Lock()
_pauses = 0
_resume = False


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Reading a ruleset allocates hundreds of thousands of objects that all live on (a
    5,000-row table's nodes, cells, conditions and engine rules), and Python's cycle
    collector would walk the growing heap again and again: about half the time of loading
    such a table. It is paused while any load runs and resumed when the last one ends (as
    it was: a process that turned it off keeps it off); nothing a load makes is garbage
    that needs it."""
    global _pauses, _resume
    with _PAUSE_LOCK:
        _pauses += 1
        if _pauses == 1:
            _resume = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


MAX_FILE_CHARS = 2_000_000
"""Larger files are refused before parsing: a policy file is never this big."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def _size_problem(data: Any) -> Found | None:
    """Too many rules and table rows, counted before anything else is checked: the other
    checks cost time per rule, and a ruleset this large is refused whatever they find."""
    if not isinstance(data, Mapping):
        return None
    rules, tables = data.get("rules"), data.get("tables")
    count = len(rules) if isinstance(rules, list) else 0
    rows = sum(len(t["rows"]) for t in tables if isinstance(t, Mapping)
               and isinstance(t.get("rows"), list)) if isinstance(tables, list) else 0
    if count + rows <= MAX_RULES:
        return None
    what = f"{count:,} rules" if not rows else f"{count:,} rules and {rows:,} table rows"
    return Found("rules" if count else "tables",
                  f"the ruleset has {what}; a ruleset may hold at most {MAX_RULES:,} rules "
                  "and table rows together")


def _load(data: Any, source: Source | None, early: list[Problem]) -> Ruleset:
    too_large = _size_problem(data)
    if too_large is not None:
        raise RulesetInvalid([*early, locate(too_large, source)])
    loaded, structure = load_structure(data)
    found = [Found(p.place, p.message) for p in structure]
    checker = Checker(data, structure) if isinstance(data, Mapping) else None
    if checker is not None:
        found += checker.run()
    problems = early + [locate(f, source) for f in found]
    if problems or loaded is None:
        raise RulesetInvalid(problems or [Problem("", "the ruleset could not be read")])
    ruleset = build_ruleset(canonical_definition(loaded), checker.parsed if checker else {})
    _check_engine_limits(ruleset)
    return ruleset


def _check_engine_limits(ruleset: Ruleset) -> None:
    """Refuses, at load time, a ruleset the engine could not run (it would only fall back)."""
    try:
        compile_ruleset(ruleset)
    except EngineCompileError as exc:
        raise RulesetInvalid([Problem("rules", f"the rule engine cannot run this ruleset: "
                                               f"{exc}; split large conditions or rules")]) \
            from None


def load_ruleset_definition(definition: Any, source: str = "<definition>") -> Ruleset:
    """Validates an already-parsed definition (the API's ``{"definition": {...}}`` body)."""
    with _cycle_collector_paused():
        return _load(definition, None, [])


def load_ruleset_text(text: str, source: str = "<text>") -> Ruleset:
    """Parses and validates ruleset text (YAML, or JSON); raises RulesetInvalid."""
    with _cycle_collector_paused():
        return _load_text(text, source)


def _load_text(text: str, source: str) -> Ruleset:
    if not isinstance(text, str):
        raise RulesetInvalid([Problem("", f"the ruleset must be text, not {describe(text)}")])
    if len(text) > MAX_FILE_CHARS:
        raise RulesetInvalid([Problem("", f"the file is too large (more than {MAX_FILE_CHARS} "
                                          "characters)")])
    if not text.strip():
        raise RulesetInvalid([Problem("", "the file is empty")])
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # no UTF-8 file holds one; only a JSON escape can make one
        raise RulesetInvalid([character_problem(text, surrogate.start())])
    data, src, problems = read_text(text, source)
    if data is None:
        # A document of only `null` (or `~`) parses without a problem but holds no ruleset.
        raise RulesetInvalid(problems or [Problem(
            "", "a ruleset must be a group of settings (name:, title:, rules: ...), "
                "not an empty value (null)")])
    return _load(data, src, problems)


def load_ruleset_file(path: str | Path) -> Ruleset:
    """Reads and validates a ruleset file; raises RulesetInvalid (OSError if unreadable)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RulesetInvalid([Problem("", "the file is not UTF-8 text")]) from None
    return load_ruleset_text(text, str(p))

