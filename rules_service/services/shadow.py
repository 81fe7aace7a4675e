"""Shadow mode use cases: start, stop and read a version's shadow.

Starting a shadow only writes its row: nothing on the evaluate path changes, ever. The
shadowed version decides recorded decisions later, in ``rules-service worker``
(``services.shadow_runner``), and its figures are read from the results it stored
(``domain.shadow`` explains the rules). Activation, rejection, withdrawal and staleness
end a shadow in the transaction of that transition (``governance._store``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rules_service.domain.errors import DomainError, NotFound
from rules_service.domain.shadow import (
    MAX_EXAMPLES,
    EndReason,
    Shadow,
    ShadowReport,
    check_can_run_shadow,
    check_can_set_alert,
    check_settings,
    check_shadowable,
    may_run_shadow,
)
from rules_service.services.governance import resolve_actor, ruleset_named, version_named
from rules_service.services.unit_of_work import AbstractUnitOfWork


def start_shadow(uow: AbstractUnitOfWork, name: str, number: int, *, sample: float,
                 alert_above: float | None = None, actor: str) -> ShadowReport:
    """Puts a pending or approved version in shadow from now (a running shadow of it
    starts again, its counts from zero).

    403 unless the version's author, an owner of the ruleset or an admin (``alert_above``:
    the business owner or an admin); 409 for a version that is not pending or approved;
    422 naming every bad setting.
    """
    check_settings(sample, alert_above)
    with uow:
        who = resolve_actor(uow, actor)
        record = uow.rulesets.get_for_update(name)  # serialises with the transitions
        if record is None:
            raise NotFound(f"no ruleset named {name}")
        version = uow.rulesets.version_in(record, number)
        if version is None:
            raise NotFound(f"ruleset {name} has no version {number}")
        check_can_run_shadow(who, version)
        if alert_above is not None:
            check_can_set_alert(who, version)
        check_shadowable(version)
        shadow = uow.shadows.start(record.id, number, sample=float(sample),
                                   alert_above=alert_above, actor=who.name, now=uow.now())
        report = ShadowReport(shadow, uow.shadows.tally(shadow.id), (), version.status)
        uow.commit()
    return report


def stop_shadow(uow: AbstractUnitOfWork, name: str, number: int, *, actor: str) -> None:
    """Ends the version's shadow (its counts stay readable); 404 when it is not in shadow,
    403 for the people who could not have started it."""
    with uow:
        who = resolve_actor(uow, actor)
        record = uow.rulesets.get_for_update(name)
        if record is None:
            raise NotFound(f"no ruleset named {name}")
        version = uow.rulesets.version_in(record, number)
        if version is None:
            raise NotFound(f"ruleset {name} has no version {number}")
        check_can_run_shadow(who, version)
        if not uow.shadows.end_for_version(record.id, number, uow.now(), who.name,
                                           EndReason.STOPPED):
            raise NotFound(f"version {number} of {name} is not in shadow")
        uow.commit()


def get_shadow(uow: AbstractUnitOfWork, name: str, number: int) -> ShadowReport:
    """The version's newest shadow with its counts and examples; 404 when the version was
    never in shadow."""
    with uow.readonly():
        rs = ruleset_named(uow, name)
        version = version_named(uow, rs, number)
        shadow = uow.shadows.latest(rs.id, number)
        if shadow is None:
            raise NotFound(f"version {number} of {name} was never in shadow")
        return ShadowReport(shadow, uow.shadows.tally(shadow.id),
                            uow.shadows.examples(shadow.id, MAX_EXAMPLES), version.status)


def find_shadow(uow: AbstractUnitOfWork, name: str, number: int) -> ShadowReport | None:
    """``get_shadow``, or None when the version was never in shadow (for the pages)."""
    try:
        return get_shadow(uow, name, number)
    except NotFound:
        return None


def running_shadows(uow: AbstractUnitOfWork, ruleset_id: int | None = None
                    ) -> list[Shadow]:
    """The shadows running now (of one ruleset, or all), in the caller's transaction."""
    return uow.shadows.running(ruleset_id)


@dataclass(frozen=True)
class ShadowControls:
    """What the review page offers a person: start or stop the shadow, set the alert."""

    may_run: bool
    may_set_alert: bool


def shadow_controls(uow: AbstractUnitOfWork, name: str, number: int,
                    actor: str) -> ShadowControls:
    """Asks the same rules ``start_shadow`` applies, so the page never offers what the
    action refuses: the version open, and the person allowed."""
    with uow.readonly():
        rs = ruleset_named(uow, name)
        version = version_named(uow, rs, number)
        who = resolve_actor(uow, actor)
        if not version.is_open or not may_run_shadow(who, version):
            return ShadowControls(False, False)
        try:
            check_can_set_alert(who, version)
        except DomainError:
            return ShadowControls(True, False)
        return ShadowControls(True, True)


@dataclass(frozen=True)
class InShadow:
    """A version running in shadow now, with its counts so far (runbook, dashboard)."""

    ruleset: str
    report: ShadowReport

    def to_dict(self) -> dict[str, object]:
        """The short form: ruleset, version, since, sample and the two counts."""
        body = self.report.to_dict()
        return {"ruleset": self.ruleset, "version": body["version"], "since": body["since"],
                "sample": body["sample"], "decisions": body["decisions"],
                "disagreements": body["disagreements"],
                "disagreement_rate": body["disagreement_rate"],
                "not_shadowed": body["not_shadowed"]}


def versions_in_shadow(uow: AbstractUnitOfWork, ruleset: str | None = None
                       ) -> list[InShadow]:
    """The versions running in shadow now (of one ruleset, or all), oldest shadow first;
    404 for an unknown ruleset."""
    with uow.readonly():
        ruleset_id = ruleset_named(uow, ruleset).id if ruleset is not None else None
        names = {entry.id: entry.name for entry in uow.rulesets.list_all()}
        return [InShadow(names.get(s.ruleset_id, str(s.ruleset_id)),
                         ShadowReport(s, uow.shadows.tally(s.id), ()))
                for s in uow.shadows.running(ruleset_id)]
