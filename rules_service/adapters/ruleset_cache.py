"""Stored versions parsed back into rulesets, cached by content hash.

Versions are immutable, so a parsed entry never goes stale: a stored definition is parsed
once per process however often it is loaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from rules_service.adapters.orm import VersionRow
from rules_service.adapters.ruleset_files import load_ruleset_definition
from rules_service.domain.ruleset import Ruleset
from rules_service.domain.versions import Version


class RulesetCache:
    """Parsed rulesets by content hash (least recently used ones dropped first)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, Ruleset] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, content_hash: str, definition: Mapping[str, Any], label: str) -> Ruleset:
        """The ruleset of a stored definition; ``label`` names it in a parse error."""
        with self._lock:
            found = self._items.get(content_hash)
            if found is not None:
                self._items.move_to_end(content_hash)
                return found
        ruleset = load_ruleset_definition(dict(definition), label)
        with self._lock:
            self._items[content_hash] = ruleset
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ruleset


_cache = RulesetCache()


def parsed(content_hash: str, definition: Mapping[str, Any], ruleset_name: str,
           number: int) -> Ruleset:
    """The ruleset a stored version holds (cached by content hash)."""
    return _cache.get(content_hash, definition, f"{ruleset_name} version {number}")


def ruleset_of(stored: Version | VersionRow) -> Ruleset:
    """The parsed ruleset of a version, whether an aggregate or a stored row."""
    if isinstance(stored, Version):
        return stored.ruleset
    return parsed(stored.content_hash, stored.definition, stored.ruleset.name, stored.number)
