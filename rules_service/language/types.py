"""The types of a ruleset's input fields, which conditions are checked against."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FieldType(StrEnum):
    """The types an input field may have."""

    NUMBER = "number"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    OBJECT = "object"


@dataclass(frozen=True)
class InputField:
    """One field of the request schema (``inputs``). Objects nest through ``properties``."""

    name: str
    type: FieldType
    required: bool = False
    default: Any = None
    has_default: bool = False
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    description: str | None = None
    properties: tuple[InputField, ...] = ()
