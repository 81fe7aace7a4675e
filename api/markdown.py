"""Runbooks and diffs as Markdown, for people who read them in a wiki or a terminal."""

from __future__ import annotations

import html
import json
from typing import Any

from rules_service.services.views import RunbookView

_SECTIONS = (
    ("purpose", "Purpose"),
    ("boundaries", "Boundaries"),
    ("normal_steps", "Normal steps"),
    ("exceptions", "Exceptions"),
    ("escalation", "Escalation"),
    ("rollback", "Rollback"),
    ("restart", "Restart checklist"),
)
_ROLE_TITLES = {"business_owner": "Business owner", "operations_owner": "Operations owner",
                "approver": "Approver", "maintainer": "Maintainer"}


def _escape(text: str) -> str:
    # Table cells and list items stay on one line and keep their pipes literal; HTML is
    # shown as text, never rendered by a Markdown viewer.
    return (html.escape(" ".join(str(text).split()), quote=False)
            .replace("|", "\\|"))


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _block(value: Any, depth: int = 0) -> list[str]:
    """Any runbook value as Markdown lines: text as paragraphs, lists as bullets."""
    indent = "  " * depth
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list):
                lines.append(f"{indent}- **{_title(str(key))}**:")
                lines.extend(_block(item, depth + 1))
            else:
                lines.append(f"{indent}- **{_title(str(key))}**: {_escape(_scalar(item))}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                first, *rest = _block(item, depth + 1)
                lines.append(f"{indent}- {first.strip()[2:]}")
                lines.extend(rest)
            elif isinstance(item, list):
                lines.extend(_block(item, depth + 1))
            else:
                lines.append(f"{indent}- {_escape(_scalar(item))}")
        return lines
    if depth:
        return [f"{indent}- {_escape(_scalar(value))}"]
    return [str(value).strip()]


def _exceptions(items: Any) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return _block(items)
    lines = ["| Exception | Response |", "|---|---|"]
    for item in items:
        lines.append(f"| {_escape(_scalar(item.get('type', '')))} "
                     f"| {_escape(_scalar(item.get('response', '')))} |")
    return lines


def _escalation(value: Any, target: str | None) -> list[str]:
    if not isinstance(value, dict):
        return _block(value)
    # List items, not bare lines: consecutive lines would run into one paragraph.
    lines = []
    path = value.get("path")
    if isinstance(path, list) and path:
        lines.append("- Path: " + " → ".join(_escape(_scalar(p)) for p in path))
    if target:
        lines.append(f"- Response-time target: **{_escape(target)}**")
    rest = {k: v for k, v in value.items() if k not in ("path", "response_time_target")}
    if rest:
        lines.append("")
        lines.extend(_block(rest))
    return lines or _block(value)


def _percent(rate: Any) -> str:
    return "no decisions" if rate is None else f"{float(rate) * 100:.1f}%"


def _rollback_call(rollback: dict[str, Any], base_url: str) -> list[str]:
    body = rollback.get("body")
    if not body:
        return ["- Rollback: no earlier version to roll back to."]
    data = json.dumps(body)
    who = ", ".join(rollback.get("allowed") or []) or "an admin"
    return [f"- Rollback to version {body['to_version']} ({_escape(who)}, or an admin):", "",
            "  ```sh",
            f"  curl -s -X {rollback['method']} {base_url}{rollback['path']} \\",
            "    -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\",
            f"    -d '{data}'",
            "  ```"]


def _live(live: dict[str, Any], base_url: str) -> list[str]:
    """The state right now, above the written procedure."""
    if not live:
        return []
    out = ["## Right now", ""]
    paused = live.get("paused")
    if paused:
        out.append(f"- **Paused** by {_escape(paused['by'])} since {paused['at']}: "
                   f"{_escape(paused['reason'])}. Every decision goes to the approver; "
                   f"follow the restart checklist before resuming.")
    active = live.get("active") or {}
    out.append(f"- Active: version {active.get('version')} since {active.get('since')}")
    if live.get("review_due_at"):
        out.append(f"- Review due: {live['review_due_at']}")
    waiting = live.get("open_versions") or []
    if not waiting:
        out.append("- No version is waiting for sign-off or its time.")
    for v in waiting:
        missing = v.get("missing_signoffs") or []
        if v.get("status") == "approved":
            state = f"approved, active from {v.get('effective_at')}"
        else:
            state = "pending, waiting for " + ("; ".join(
                f"{m['role']} ({', '.join(m['holders']) or 'nobody holds it'})"
                for m in missing) or "nothing")
        out.append(f"- Version {v['version']} by {_escape(v.get('author', ''))}: {state}")
        shadow = v.get("shadow")
        if shadow:
            out.append(f"  - in shadow since {shadow['since']} on {shadow['sample']:.0%} of "
                       f"live decisions: {shadow['disagreements']} of "
                       f"{_count(shadow['decisions'], 'decision')} decided differently")
    esc = live.get("escalations") or {}
    target = esc.get("response_time_target")
    out.append(f"- Escalations: {esc.get('open', 0)} open, "
               f"{esc.get('overdue', 0)} overdue"
               + (f" (response-time target {_escape(target)})" if target else ""))
    fb = live.get("fallbacks") or {}
    out.append(f"- Fallbacks in the last {fb.get('window_hours', 24):g} hours: "
               f"{fb.get('count', 0)} of {_count(fb.get('decisions', 0), 'decision')} "
               f"({_percent(fb.get('rate'))})")
    out += _rollback_call(live.get("rollback") or {}, base_url)
    return out + [""]


def render_runbook(view: RunbookView, base_url: str = "") -> str:
    """The runbook of a ruleset's active version, with its live state, as Markdown."""
    out = [f"# Runbook: {view.title or view.ruleset}", "",
           f"Ruleset `{view.ruleset}`, active version {view.version}.", ""]
    out += _live(view.live, base_url)
    if view.owners:
        out += ["## Owners", "", "| Role | Primary | Backup |", "|---|---|---|"]
        for role, holders in view.owners.items():
            out.append(f"| {_ROLE_TITLES.get(role, _title(role))} "
                       f"| {_escape(holders.get('primary') or '')} "
                       f"| {_escape(holders.get('backup') or '—')} |")
        out.append("")
    runbook = dict(view.runbook)
    known = [key for key, _ in _SECTIONS]
    sections = [(key, title) for key, title in _SECTIONS if key in runbook]
    sections += [(key, _title(key)) for key in runbook if key not in known]
    for key, title in sections:
        value = runbook[key]
        out += [f"## {title}", ""]
        if key == "exceptions":
            out += _exceptions(value)
        elif key == "escalation":
            out += _escalation(value, view.response_time_target)
        elif key in ("normal_steps", "restart") and isinstance(value, list):
            out += [f"{i}. {_escape(_scalar(step))}" for i, step in enumerate(value, 1)]
        else:
            out += _block(value)
        out.append("")
    if not runbook:
        out += ["_This ruleset has no runbook yet._", ""]
    return "\n".join(out).rstrip() + "\n"


def _version(number: Any) -> str:
    return f"version {number}" if number is not None else "nothing (a first version)"


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 decision``, ``2 decisions``: numbers with their noun in the right number."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _impact(impact: dict[str, Any]) -> list[str]:
    replayed = impact.get("replayed", 0)
    out = ["## Impact on recorded decisions", ""]
    if not replayed:
        return out + ["No recorded decisions to replay.", ""]
    rejected = impact.get("input_rejected", 0)
    out.append(f"Decided the inputs of the last {_count(replayed, 'recorded decision')} under "
               f"both versions: **{impact.get('changed', 0)} would change**, "
               f"{impact.get('unchanged', 0)} would not, {_count(rejected, 'input')} would no "
               f"longer be accepted.")
    transitions = impact.get("transitions") or {}
    if transitions:
        out += ["", "| Outcome change | Decisions |", "|---|---|"]
        out += [f"| {_escape(k.replace('->', ' → '))} | {v} |" for k, v in transitions.items()]
    examples = impact.get("examples") or []
    if examples:
        out += ["", "Examples:", ""]
        out += [f"- `{e['decision_id']}`: {e['before']} → {e['after']} for "
                f"`{_escape(json.dumps(e['input'], sort_keys=True))}`" for e in examples]
    drift = impact.get("drift", 0)
    if drift:
        how = ", ".join(f"{k.replace('->', ' → ')}: {v}"
                        for k, v in (impact.get("drift_transitions") or {}).items())
        out += ["", f"Not this change's doing: {_count(drift, 'recorded outcome')} "
                    f"{'differs' if drift == 1 else 'differ'} from what the `from` version "
                    f"decides today (earlier changes, pinned versions or fallbacks; {how})."]
    base_rejected = impact.get("base_rejected", 0)
    if base_rejected:
        out += ["", f"{_count(base_rejected, 'input')} the `from` version would not accept "
                    f"{'was' if base_rejected == 1 else 'were'} left out of the comparison."]
    return out + [""]


def _version_facts(version: dict[str, Any] | None, base_url: str) -> list[str]:
    """Who proposed the version, why, from what, for when; who signed; how to sign."""
    if not version:
        return []
    effective = version.get("effective_at") or "at once, once approved"
    out = [f"- Proposed by **{_escape(version.get('author', ''))}** "
           f"on {version.get('created_at')}",
           f"- Note: {_escape(version.get('note') or '(none)')}",
           f"- Based on: {_version(version.get('base_version'))}",
           f"- Takes effect: {effective}",
           f"- Status: {version.get('status')}",
           f"- Required sign-offs: {', '.join(version.get('required_signoffs') or []) or 'none'}",
           ""]
    signoffs = version.get("signoffs") or []
    out += ["## Sign-offs", ""]
    if signoffs:
        out += ["| Role | By | Decision | When | Comment |", "|---|---|---|---|---|"]
        out += [f"| {_escape(s['role'])} | {_escape(s['principal'])} | {s['decision']} "
                f"| {s.get('at') or ''} | {_escape(s.get('comment') or '')} |"
                for s in signoffs]
    else:
        out.append("Nobody has signed off yet.")
    missing = version.get("missing_signoffs") or []
    if missing and version.get("status") == "pending":
        holders = version.get("signoff_holders") or {}
        out += ["", "Still needed: " + "; ".join(
            f"{role} ({', '.join(holders.get(role) or []) or 'nobody holds it'})"
            for role in missing) + f". The author, {_escape(version.get('author', ''))}, "
            "cannot sign, and one person fills one role.", "",
            "To sign, as one of them:", "", "```sh",
            f"curl -s -X POST {base_url}/v1/rulesets/{version.get('ruleset')}/versions/"
            f"{version.get('version')}/signoffs \\",
            "  -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\",
            "  -d '{\"decision\": \"approve\", \"comment\": \"...\"}'",
            "```", "", "(`\"decision\": \"reject\"` rejects it.)"]
    return out + [""]


def _undoes(undoes: list[dict[str, Any]]) -> list[str]:
    if not undoes:
        return []
    out = ["## Takes back changes of newer versions", "",
           "This version undoes what these versions changed; make sure that is intended:", ""]
    for item in undoes:
        out.append(f"- Version {item['version']} by {_escape(item.get('author', ''))} "
                   f"({_escape(item.get('note') or 'no note')}):")
        out += [f"  - {_escape(sentence)}" for sentence in item.get("summary") or []]
    return out + [""]


def render_diff(diff: dict[str, Any], base_url: str = "") -> str:
    """A diff as the page an approver reads: the version's facts and sign-offs, the changes,
    what it takes back, and its replayed impact."""
    out = [f"# {diff['ruleset']}: {_version(diff['from'])} → version {diff['to']}", ""]
    out += _version_facts(diff.get("version"), base_url)
    out += ["## Changes", ""]
    summary = diff.get("summary") or []
    out += [f"- {_escape(sentence)}" for sentence in summary] or ["No changes."]
    out.append("")
    out += _undoes(diff.get("undoes") or [])
    if diff.get("warnings"):
        out += ["## Table warnings", ""]
        out += [f"- {_escape(w)}" for w in diff["warnings"]]
        out.append("")
    if diff.get("impact") is not None:
        out += _impact(diff["impact"])
    return "\n".join(out).rstrip() + "\n"


def render_error(status: int, code: str, message: str,
                 details: list[dict[str, Any]]) -> str:
    """An error answer for someone who asked for a page."""
    out = [f"# {status}: {code.replace('_', ' ')}", "", _escape(message), ""]
    out += [f"- {_escape(str(d.get('place') or ''))}: {_escape(str(d.get('message', d)))}"
            .replace("- : ", "- ") for d in details]
    return "\n".join(out).rstrip() + "\n"
