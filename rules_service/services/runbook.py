"""The runbook use case: what the active version's runbook says, and what is true right now.

People on call read the runbook when something is wrong, so it carries the live state
beside the written procedure: the active version and since when, versions waiting for
sign-off or their time (and which of them run in shadow), open and overdue escalations
against the response-time target, the fallback rate of the last 24 hours, the exact
rollback call, whether the ruleset is paused (by whom, since when, why) and when its
review falls due.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.lifecycle import ROLLBACK_ROLES, VersionStatus
from rules_service.services import dashboard, governance
from rules_service.services.shadow import InShadow, versions_in_shadow
from rules_service.services.views import RunbookView, VersionView, iso, pause_dict

LIVE_WINDOW = timedelta(hours=24)


def _open_version(version: VersionView, shadow: InShadow | None) -> dict[str, Any]:
    missing = version.missing_signoffs
    return {"version": version.version, "status": version.status, "author": version.author,
            "shadow": shadow.to_dict() if shadow is not None else None,
            "note": version.note, "effective_at": iso(version.effective_at),
            "missing_signoffs": [{"role": role,
                                  "holders": list(version.signoff_holders.get(role, []))}
                                 for role in missing]}


def _rollback_target(versions: tuple[VersionView, ...], active: int) -> int | None:
    """The version the active one replaced: the superseded version closed last."""
    superseded = [v for v in versions if v.status == VersionStatus.SUPERSEDED.value
                  and v.version != active and v.closed_at is not None]
    if not superseded:
        return None
    return max(superseded, key=lambda v: (v.closed_at, v.version)).version


def get_runbook(uow: UnitOfWork, name: str) -> RunbookView:
    """The active version's runbook with its live state; 409 ``no_active_version``."""
    loaded = governance.load_version(uow, name)
    detail = governance.get_ruleset(uow, name)
    figures = dashboard.dashboard(uow, ruleset=name, since=LIVE_WINDOW)["rulesets"][0]
    active = next(v for v in detail.versions if v.version == loaded.version)
    target = _rollback_target(detail.versions, loaded.version)
    ruleset = loaded.ruleset
    shadows = {s.report.shadow.version: s for s in versions_in_shadow(uow, name)}
    live = {
        "paused": pause_dict(detail.summary.paused),
        "review_due_at": iso(detail.summary.review_due_at),
        "active": {"version": loaded.version, "since": iso(active.activated_at)},
        "open_versions": [_open_version(v, shadows.get(v.version)) for v in detail.versions
                          if VersionStatus(v.status).is_open],
        "escalations": {"open": figures["escalations"]["open"],
                        "overdue": figures["escalations"]["overdue"],
                        "response_time_target": ruleset.response_time_target},
        "fallbacks": {"window_hours": LIVE_WINDOW.total_seconds() / 3600,
                      "decisions": figures["decisions"]["count"],
                      "count": figures["fallbacks"]["count"],
                      "rate": figures["fallbacks"]["rate"]},
        "rollback": {
            "method": "POST", "path": f"/v1/rulesets/{name}/rollback",
            "body": {"to_version": target, "reason": "<why>"} if target is not None else None,
            "allowed": [h for role in ROLLBACK_ROLES for h in ruleset.holders_of(role)]},
    }
    return RunbookView(loaded.name, ruleset.title, loaded.version,
                       governance.owners_dict(ruleset), dict(ruleset.runbook),
                       ruleset.response_time_target, live)
