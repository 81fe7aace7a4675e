"""Telling a business owner that their policy is due for review, once per activation.

``review_every`` in a ruleset file sets the rhythm; the review falls due at the last
activation plus that (``domain.review_rhythm``). The worker calls ``tell_reviews_due``
on its periodic loop: each due review is claimed on the ruleset's row and its
``ruleset.review_due`` event added to the outbox in the same transaction, so racing
workers tell it once, and a new activation (or rollback) starts the rhythm again.
"""

from __future__ import annotations

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import review_rhythm
from rules_service.domain.lifecycle import SYSTEM_ACTOR
from rules_service.domain.notifications import REVIEW_DUE
from rules_service.services.views import iso


def tell_reviews_due(uow: UnitOfWork) -> int:
    """Adds ``ruleset.review_due`` for every active version whose review time passed and
    was not told since it activated; returns how many were told."""
    told = 0
    with uow:
        now = uow.now()
        entries = {e.id: e for e in uow.rulesets.list_all()}
        for ruleset_id, version in uow.versions.active_by_ruleset().items():
            entry = entries.get(ruleset_id)
            activated = version.activated_at
            if entry is None or activated is None:
                continue
            if not review_rhythm.needs_telling(version.ruleset, activated,
                                               entry.review_told_at, now):
                continue
            if not uow.rulesets.claim_review(ruleset_id, activated, now):
                continue
            due = review_rhythm.due_at(version.ruleset, activated)
            uow.outbox.add(REVIEW_DUE, ruleset_id, now, {
                "version": version.number, "actor": SYSTEM_ACTOR, "comment": "",
                "details": {"activated_at": iso(activated), "due_at": iso(due),
                            "review_every": version.ruleset.review_every}})
            told += 1
        uow.commit()
    return told
