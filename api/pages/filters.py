"""Template filters: times, names, JSON, and the before/after highlighting of a change."""

from __future__ import annotations

import difflib
import json
import re
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from api.pages.blueprint import bp
from rules_service.domain.lifecycle import parse_duration
from rules_service.language import wording


@bp.app_template_filter("moment")
def moment(value: datetime | str | None) -> str:
    """A moment as ``2026-12-01 11:05 UTC``."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("humanize")
def humanize(key: Any) -> str:
    """``normal_steps`` as ``Normal steps``."""
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


@bp.app_template_filter("duration_words")
def duration_words(text: Any) -> str:
    """A written duration as people say it: ``8h`` as ``8 hours``, ``1h30m`` as ``1 hour
    30 minutes``; anything else as written."""
    try:
        seconds = int(parse_duration(str(text)).total_seconds())
    except ValueError:
        return str(text)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "no time"


@bp.app_template_filter("role_words")
def role_words(role: Any) -> str:
    """``business_owner`` as ``business owner``."""
    return wording.role_words(str(role))


@bp.app_template_filter("compact")
def compact(value: Any) -> str:
    """A value as one line of JSON (strings as they are)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@bp.app_template_filter("pretty")
def pretty(value: Any) -> str:
    """A value as indented JSON (strings as they are); None as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def highlight(before: Any, after: Any) -> tuple[Markup, Markup]:
    """Before and after as HTML, the words that differ marked (``mark.del``/``mark.ins``)."""
    old, new = pretty(before), pretty(after)
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old_part, new_part = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old_part)
            right.append(new_part)
            continue
        if old_part:
            left.append(Markup('<mark class="del">%s</mark>') % old_part)
        if new_part:
            right.append(Markup('<mark class="ins">%s</mark>') % new_part)
    # Both sides are joined from escaped parts and Markup-formatted marks.
    return Markup("".join(left)), Markup("".join(right))  # noqa: S704


bp.add_app_template_global(highlight, "highlight")


@bp.app_template_filter("reject_keys")
def reject_keys(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The mapping without the given keys (shown elsewhere on the page)."""
    return {k: v for k, v in mapping.items() if k not in keys}


_INDEXED = re.compile(r"([A-Za-z_]\w*)\[(\d+)\]")
_SINGULAR = {"rules": "rule", "tests": "test", "tables": "table", "rows": "row",
             "steps": "step", "inputs": "input"}


def place_words(place: str, line: int | None = None) -> str:
    """Where a problem is, counted as people count: ``rules[8].when`` on line 34 as
    ``rule 9 (when), line 34``; an empty place is the file."""
    named: list[str] = []
    fields: list[str] = []
    for part in place.split(".") if place else []:
        match = _INDEXED.fullmatch(part)
        if match:
            word = _SINGULAR.get(match[1], match[1])
            named.append(f"{word} {int(match[2]) + 1}")
            fields = []
        else:
            fields.append(part)
    where = ", ".join(named)
    if fields:
        field = ".".join(fields)
        where = f"{where} ({field})" if where else field
    if line is not None:
        where = f"{where}, line {line}" if where else f"line {line}"
    return where or "the file"


bp.add_app_template_filter(place_words, "place_words")
