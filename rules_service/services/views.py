"""What the service layer returns: plain dataclasses with a JSON form, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules_service.domain.pause import Pause
from rules_service.domain.versions import Version
from rules_service.language.wording import either, role_words


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime, or None."""
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class SignoffView:
    """One role's sign-off of a version."""

    role: str
    principal: str
    decision: str
    comment: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"role": self.role, "principal": self.principal, "decision": self.decision,
                "comment": self.comment, "at": iso(self.at)}


@dataclass(frozen=True)
class VersionView:
    """A version: its lifecycle state, sign-offs, and content."""

    ruleset: str
    version: int
    status: str
    author: str
    note: str
    base_version: int | None
    content_hash: str
    effective_at: datetime | None
    created_at: datetime
    approved_at: datetime | None
    activated_at: datetime | None
    closed_at: datetime | None
    required_signoffs: tuple[str, ...]
    signoff_holders: dict[str, list[str]]
    signoffs: tuple[SignoffView, ...]
    content: str
    definition: dict[str, Any] = field(repr=False)
    warnings: tuple[dict[str, Any], ...] = ()
    """Set by a proposal: the other open versions on the same base, each a warning."""

    @property
    def missing_signoffs(self) -> tuple[str, ...]:
        """Required roles nobody has signed yet."""
        done = {s.role for s in self.signoffs}
        return tuple(r for r in self.required_signoffs if r not in done)

    def to_dict(self, *, include_content: bool = True) -> dict[str, Any]:
        """JSON form; listings leave the content out."""
        out: dict[str, Any] = {
            "ruleset": self.ruleset,
            "version": self.version,
            "status": self.status,
            "author": self.author,
            "note": self.note,
            "base_version": self.base_version,
            "content_hash": self.content_hash,
            "effective_at": iso(self.effective_at),
            "created_at": iso(self.created_at),
            "approved_at": iso(self.approved_at),
            "activated_at": iso(self.activated_at),
            "closed_at": iso(self.closed_at),
            "required_signoffs": list(self.required_signoffs),
            "missing_signoffs": list(self.missing_signoffs),
            "signoff_holders": {k: list(v) for k, v in self.signoff_holders.items()},
            "signoffs": [s.to_dict() for s in self.signoffs],
        }
        if include_content:
            out["content"] = self.content
            out["definition"] = self.definition
        return out

    def signoff_result(self, principal: str) -> dict[str, Any]:
        """The answer to a sign-off: the sign-off ``principal`` just gave, and where the
        version stands now (not the whole version: its content can be large)."""
        given = next((s for s in reversed(self.signoffs) if s.principal == principal), None)
        return {"ruleset": self.ruleset, "version": self.version, "status": self.status,
                "signoff": given.to_dict() if given is not None else None,
                "required_signoffs": list(self.required_signoffs),
                "missing_signoffs": list(self.missing_signoffs),
                "effective_at": iso(self.effective_at),
                "activated_at": iso(self.activated_at)}


    def signoff_sentence(self, principal: str) -> str:
        """Where the version stands after ``principal`` signed it, in words:
        "Approved by you as approver; still waiting for the business owner (carol or
        frank)"."""
        given = next((s for s in reversed(self.signoffs) if s.principal == principal), None)
        done = (f"{'Approved' if given.decision == 'approve' else 'Rejected'} by you as "
                f"{role_words(given.role)}" if given is not None else "Signed")
        if self.status == "pending":
            waiting = " and ".join(
                f"the {role_words(r)} "
                f"({either([n for n in self.signoff_holders.get(r, []) if n != self.author])})"
                for r in self.missing_signoffs)
            return f"{done}; still waiting for {waiting}"
        if self.status == "active":
            return f"{done}; every sign-off is in and version {self.version} is active now"
        if self.status == "approved":
            at = self.effective_at.strftime("%Y-%m-%d %H:%M UTC") if self.effective_at \
                else "soon"
            return (f"{done}; every sign-off is in and version {self.version} takes "
                    f"effect at {at}")
        if self.status == "rejected":
            return f"{done}; version {self.version} will not take effect"
        if self.status == "stale":
            return (f"{done}; but another version became active meanwhile, so version "
                    f"{self.version} can no longer take effect: its author proposes the "
                    f"change again")
        return f"{done}; version {self.version} is {self.status}"


def version_view(version: Version) -> VersionView:
    """The view of a version: its state, who must sign it and who did, and its content."""
    authority = version.authority
    holders = {role: list(authority.holders_of(role)) for role in authority.signoff}
    return VersionView(
        ruleset=version.ruleset_name, version=version.number, status=version.status.value,
        author=version.author, note=version.note, base_version=version.base_version,
        content_hash=version.content_hash, effective_at=version.effective_at,
        created_at=version.created_at, approved_at=version.approved_at,
        activated_at=version.activated_at, closed_at=version.closed_at,
        required_signoffs=tuple(authority.signoff), signoff_holders=holders,
        signoffs=tuple(SignoffView(s.role, s.principal, s.decision.value, s.comment, s.at)
                       for s in version.signoffs),
        content=version.content, definition=dict(version.definition))


@dataclass(frozen=True)
class ScheduledVersion:
    """An approved version waiting for its effective time."""

    version: int
    effective_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"version": self.version, "effective_at": iso(self.effective_at)}


@dataclass(frozen=True)
class RulesetSummary:
    """A ruleset in a listing."""

    name: str
    title: str
    active_version: int | None
    pending_versions: tuple[int, ...]
    scheduled_versions: tuple[ScheduledVersion, ...]
    latest_version: int | None
    created_at: datetime
    paused: Pause | None = None
    review_due_at: datetime | None = None
    """The active version's review falls due (last activation + ``review_every``)."""

    def review_due(self, now: datetime) -> bool:
        """True once the active version's review time has passed."""
        return self.review_due_at is not None and self.review_due_at <= now

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "title": self.title, "active_version": self.active_version,
                "pending_versions": list(self.pending_versions),
                "scheduled_versions": [s.to_dict() for s in self.scheduled_versions],
                "latest_version": self.latest_version, "created_at": iso(self.created_at),
                "paused": pause_dict(self.paused), "review_due_at": iso(self.review_due_at)}


def pause_dict(pause: Pause | None) -> dict[str, Any] | None:
    """A pause as JSON: ``{"by", "at", "reason"}``, or None."""
    if pause is None:
        return None
    return {"by": pause.by, "at": iso(pause.at), "reason": pause.reason}


@dataclass(frozen=True)
class RulesetDetail:
    """One ruleset: the summary plus what its active version says about it."""

    summary: RulesetSummary
    description: str
    owners: dict[str, dict[str, str | None]]
    signoff: tuple[str, ...]
    versions: tuple[VersionView, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = self.summary.to_dict()
        out.update({
            "description": self.description,
            "owners": self.owners,
            "signoff": list(self.signoff),
            "versions": [v.to_dict(include_content=False) for v in self.versions],
        })
        return out


@dataclass(frozen=True)
class AuditEventView:
    """One recorded transition."""

    id: int
    ruleset: str
    version: int | None
    action: str
    actor: str
    comment: str
    details: dict[str, Any]
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "ruleset": self.ruleset, "version": self.version,
                "action": self.action, "actor": self.actor, "comment": self.comment,
                "details": self.details, "at": iso(self.at)}


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback changed."""

    ruleset: str
    active_version: int
    previous_version: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the API's ``{"active_version": n}`` plus context)."""
        return {"ruleset": self.ruleset, "active_version": self.active_version,
                "previous_version": self.previous_version}


@dataclass(frozen=True)
class RunbookView:
    """The runbook of a ruleset's active version."""

    ruleset: str
    title: str
    version: int
    owners: dict[str, dict[str, str | None]]
    runbook: dict[str, Any]
    response_time_target: str | None
    live: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; ``live`` is the state right now (see ``services.runbook``)."""
        return {"ruleset": self.ruleset, "title": self.title, "version": self.version,
                "owners": self.owners, "runbook": self.runbook,
                "response_time_target": self.response_time_target, "live": self.live}


@dataclass(frozen=True)
class PrincipalView:
    """A principal, never its tokens."""

    name: str
    is_admin: bool
    is_automation: bool
    created_at: datetime
    revoked_at: datetime | None
    active_tokens: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "is_admin": self.is_admin,
                "is_automation": self.is_automation, "created_at": iso(self.created_at),
                "revoked_at": iso(self.revoked_at), "active_tokens": self.active_tokens}


@dataclass(frozen=True)
class IssuedToken:
    """A principal and a token just issued to it (shown once, stored only as a hash)."""

    principal: PrincipalView
    token: str = field(repr=False)


@dataclass(frozen=True)
class SyncResult:
    """What ``sync`` did with one file."""

    path: str
    status: str  # proposed | unchanged | invalid | refused
    ruleset: str | None = None
    version: int | None = None
    message: str = ""
    code: str | None = None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "status": self.status, "ruleset": self.ruleset,
                "version": self.version, "message": self.message, "code": self.code,
                "problems": list(self.problems)}
