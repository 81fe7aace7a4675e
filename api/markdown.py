"""Runbooks and diffs as Markdown, for people who read them in a wiki or a terminal."""

from __future__ import annotations

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
)
_ROLE_TITLES = {"business_owner": "Business owner", "operations_owner": "Operations owner",
                "approver": "Approver", "maintainer": "Maintainer"}


def _escape(text: str) -> str:
    # Table cells and list items must stay on one line and keep their pipes literal.
    return " ".join(str(text).split()).replace("|", "\\|")


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
    lines = []
    path = value.get("path")
    if isinstance(path, list) and path:
        lines.append("Path: " + " → ".join(_escape(_scalar(p)) for p in path))
    if target:
        lines.append(f"Response-time target: **{_escape(target)}**")
    rest = {k: v for k, v in value.items() if k not in ("path", "response_time_target")}
    if rest:
        lines.append("")
        lines.extend(_block(rest))
    return lines or _block(value)


def render_runbook(view: RunbookView) -> str:
    """The runbook of a ruleset's active version as a Markdown document."""
    out = [f"# Runbook: {view.title or view.ruleset}", "",
           f"Ruleset `{view.ruleset}`, active version {view.version}.", ""]
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
        elif key == "normal_steps" and isinstance(value, list):
            out += [f"{i}. {_escape(_scalar(step))}" for i, step in enumerate(value, 1)]
        else:
            out += _block(value)
        out.append("")
    if not runbook:
        out += ["_This ruleset has no runbook yet._", ""]
    return "\n".join(out).rstrip() + "\n"


def _version(number: Any) -> str:
    return f"version {number}" if number is not None else "nothing (a first version)"


def _impact(impact: dict[str, Any]) -> list[str]:
    replayed = impact.get("replayed", 0)
    out = ["## Impact on recorded decisions", ""]
    if not replayed:
        return out + ["No recorded decisions to replay.", ""]
    out.append(f"Replayed the last {replayed} decisions on the new version: "
               f"**{impact.get('changed', 0)} would change**, {impact.get('unchanged', 0)} "
               f"would not, {impact.get('input_rejected', 0)} inputs would no longer be "
               f"accepted.")
    transitions = impact.get("transitions") or {}
    if transitions:
        out += ["", "| Outcome change | Decisions |", "|---|---|"]
        out += [f"| {_escape(k.replace('->', ' → '))} | {v} |" for k, v in transitions.items()]
    examples = impact.get("examples") or []
    if examples:
        out += ["", "Examples:", ""]
        out += [f"- `{e['decision_id']}`: {e['before']} → {e['after']} for "
                f"`{_escape(json.dumps(e['input'], sort_keys=True))}`" for e in examples]
    return out + [""]


def render_diff(diff: dict[str, Any]) -> str:
    """A diff (and its impact, when replayed) as a Markdown page for approvers."""
    out = [f"# {diff['ruleset']}: {_version(diff['from'])} → version {diff['to']}", "",
           "## Changes", ""]
    summary = diff.get("summary") or []
    out += [f"- {_escape(sentence)}" for sentence in summary] or ["No changes."]
    out.append("")
    if diff.get("warnings"):
        out += ["## Table warnings", ""]
        out += [f"- {_escape(w)}" for w in diff["warnings"]]
        out.append("")
    if diff.get("impact") is not None:
        out += _impact(diff["impact"])
    return "\n".join(out).rstrip() + "\n"
