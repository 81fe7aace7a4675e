"""How views reach the service layer: the container ``create_app`` was given or built."""

from __future__ import annotations

from typing import Any

from flask import current_app

EXTENSION = "rules_service"


def container() -> Any:
    """The application's container (unit-of-work factory, evaluator, settings)."""
    return current_app.extensions[EXTENSION]
