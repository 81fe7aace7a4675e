"""The log line formats of every process (API, gunicorn, worker): ``RULES_SERVICE_LOG_FORMAT``
is ``json`` (one object per line, the default) or ``text``."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}


def json_formatter() -> logging.Formatter:
    """One JSON object per line; ``extra`` fields become keys; ``time`` in UTC ISO 8601."""
    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES, timestamp="time")


def configure_stderr(log_format: str, level: str, text_format: str) -> None:
    """One stderr handler on the root logger in the format asked for, unless the process
    configured logging already (a test runner, an embedding application)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json"
                         else logging.Formatter(text_format))
    root.addHandler(handler)
    root.setLevel(level)
