"""How values and types are worded in the sentences people read (problems, warnings).

One place for these words, so a message says a thing the same way wherever it is made.
Where two kinds of message word a thing differently on purpose, both forms are here, each
named for where it is used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rules_service.language.types import FieldType

PREVIEW_CHARS = 60
"""How much of a value a problem repeats back: enough to recognise it, never a whole
megabyte someone sent."""

TYPE_WORDS = {
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "a whole number",
    FieldType.STRING: "text",
    FieldType.BOOLEAN: "true/false",
    FieldType.OBJECT: "a group of fields",
}
"""What a field is, in a sentence about the field ("'amount' is a number, so ...")."""

EXPECTED_TYPE_WORDS = {
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "a whole number",
    FieldType.STRING: "text",
    FieldType.BOOLEAN: "true or false",
    FieldType.OBJECT: "an object (a group of fields)",
}
"""What a given value must be, in an input problem ("must be true or false, not text")."""


_AN_SOUND_EXCEPTIONS = ("uni", "use", "usu", "uti", "ura", "eu", "one", "once")
_SILENT_H = ("hour", "honest", "honour", "honor", "heir")


def with_article(word: str) -> str:
    """``word`` after "a" or "an" as it is said: "an expense-approval", "a discount-approval",
    "an hourly", "a user-...". The first letter decides, save a few known sounds."""
    low = word.lower()
    if low.startswith(_SILENT_H):
        return f"an {word}"
    if low[:1] in "aeiou" and not low.startswith(_AN_SOUND_EXCEPTIONS):
        return f"an {word}"
    return f"a {word}"


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` when short, else its start and how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def show(value: Any) -> str:
    """A value in a condition's problem: booleans as written, text in quotes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def show_written(value: Any) -> str:
    """A value written in a ruleset file: as ``show``, with numbers in their short form."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else show(value)


def show_given(value: Any) -> str:
    """A value a caller sent: long text cut short, whole numbers without a fraction."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{preview(value)}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def show_cell(value: Any) -> str:
    """A value as a table cell reads: bare, whole numbers without a fraction."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def show_json(value: Any) -> str:
    """A value as JSON (for an example input), whole numbers without a fraction."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


def role_words(role: str) -> str:
    """A role as people say it: ``business_owner`` is "business owner"."""
    return role.replace("_", " ")


def either(names: Sequence[str]) -> str:
    """``carol or frank``; "nobody" when there is no one."""
    return " or ".join(names) if names else "nobody"
