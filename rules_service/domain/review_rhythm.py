"""The review rhythm of a policy: ``review_every`` in its file says how long an active
version may run before its business owner looks at it again.

The review falls due at the last activation plus ``review_every``; it is told once per
activation (``ruleset.review_due``) and waits in the business owner's inbox until a new
version activates (a rollback counts: it is an activation too).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rules_service.domain.lifecycle import parse_duration
from rules_service.domain.ruleset import Ruleset


def interval(ruleset: Ruleset) -> timedelta | None:
    """``review_every`` as a duration; None when the file sets no rhythm."""
    if not ruleset.review_every:
        return None
    try:
        return parse_duration(ruleset.review_every)
    except ValueError:
        return None  # the file format refuses these; an old row never blocks a read


def due_at(ruleset: Ruleset, activated_at: datetime | None) -> datetime | None:
    """When the active version is due for review; None without a rhythm or activation."""
    every = interval(ruleset)
    if every is None or activated_at is None:
        return None
    try:
        return activated_at + every
    except OverflowError:
        return None


def is_due(ruleset: Ruleset, activated_at: datetime | None, now: datetime) -> bool:
    """True once the review's time has passed (until a new version activates)."""
    due = due_at(ruleset, activated_at)
    return due is not None and due <= now


def needs_telling(ruleset: Ruleset, activated_at: datetime | None,
                  told_at: datetime | None, now: datetime) -> bool:
    """True when the review is due and was not told since this version activated."""
    if not is_due(ruleset, activated_at, now):
        return False
    return told_at is None or activated_at is None or told_at < activated_at


__all__ = ["due_at", "interval", "is_due", "needs_telling"]
