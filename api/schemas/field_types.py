"""The field types and limits the API's schemas share: strict booleans, UTC date-times,
version numbers, counted lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields, validate

from rules_service.domain.lifecycle import MAX_VERSION_NUMBER, ensure_utc

MAX_DECISIONS_PAGE = 1000
MAX_IMPACT_REPLAY = 10000

OUTCOMES = ("approve", "escalate", "reject")
SIGNOFF_DECISIONS = ("approve", "reject")

TEXT_LIMIT = 10_000


class QueryDateTime(fields.DateTime):
    """An ISO 8601 time in a query string: a date alone is midnight UTC, no zone means UTC,
    and a ``+`` that URL decoding turned into a space is put back."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            text = value.strip()
            if " " in text and "T" in text:
                text = text.replace(" ", "+")
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise self.make_error("invalid", input=value, obj_type="datetime") from None
            return in_utc(moment)
        raise self.make_error("invalid", input=value, obj_type="datetime")


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive ones are UTC); a ValidationError when it has no UTC time
    (``0001-01-01T00:00:00+23:59``), so the field is named instead of a 500."""
    try:
        return ensure_utc(moment)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class UtcAwareDateTime(fields.AwareDateTime):
    """An ISO 8601 time with a zone in a JSON body, loaded as UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        return in_utc(super()._deserialize(value, attr, data, **kwargs))


class CountedList(fields.List):
    """A list whose validators (its length) run on the raw list before any item is loaded:
    100,000 items are refused for their count, not after loading each one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list):
            self._validate(value)
        return super()._deserialize(value, attr, data, **kwargs)


class InputCount(validate.Length):
    """How many inputs a batch holds (the spec's minItems/maxItems), in words that give the
    count rather than echo the list."""

    message_all = "give at least {min} and at most {max} inputs per batch, not {count}"

    def _format_error(self, value: Any, message: str) -> str:
        return (self.error or message).format(count=len(value), min=self.min, max=self.max)


def VersionNumber(**kwargs: Any) -> fields.Integer:  # reads like a field class
    """A version number: 1 up to the largest a version can have; larger is a 422 naming
    the field rather than a number the database cannot even compare."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_VERSION_NUMBER), **kwargs)


def StrictBoolean(**kwargs: Any) -> fields.Boolean:  # reads like a field class
    """A JSON boolean: true or false, never "yes" or 1."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)


def QueryBoolean(**kwargs: Any) -> fields.Boolean:  # reads like a field class
    """A query-string boolean: true/false (1/0 too)."""
    return fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"}, **kwargs)
