"""The emails people get: one notice, or a digest of several for one person. Each notice
says what happened in one sentence, links to the page where it is acted on (the
``base_url`` people reach the pages at), and for an escalation gives its due time, the
decision's input and the rules that fired."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules_service.domain import notifications as rules
from rules_service.domain import weekly_report
from rules_service.domain.escalations import DecisionFacts

_SHOWN_ELSEWHERE = ("details", "escalation_id", "decision_id", "due_at", "skipped")


@dataclass(frozen=True)
class Notice:
    """One event as a person is told of it."""

    event_id: str
    event_type: str
    occurred_at: datetime
    ruleset: str | None
    data: dict[str, Any]
    decision: DecisionFacts | None = None


@dataclass(frozen=True)
class _Section:
    sentence: str
    link: str | None
    facts: list[tuple[str, str]]


def _fired(decision: DecisionFacts) -> str:
    parts = []
    for rule in decision.fired_rules:
        reason = rule.get("reason") if isinstance(rule, dict) else None
        rule_id = rule.get("id") if isinstance(rule, dict) else rule
        parts.append(f"{rule_id} ({reason})" if reason else str(rule_id))
    return "; ".join(parts) or "none (the ruleset's default decided)"


def _report_facts(notice: Notice, base_url: str) -> list[tuple[str, str]]:
    """A weekly report's lines: each figure beside the week before, the owners, the week,
    and the dashboard's address."""
    data = notice.data
    facts = [(str(c.get("label")), str(c.get("words"))) for c in data.get("figures") or []
             if isinstance(c, dict)]
    facts.append(("compared", weekly_report.COMPARISON_NOTE))
    owners = data.get("owners")
    facts.append(("owners", weekly_report.owners_words(owners if isinstance(owners, dict)
                                                       else {})))
    facts.append(("week", f"{data.get('week_start')} 00:00 to {data.get('week_end')} "
                          f"00:00 UTC"))
    if base_url and notice.ruleset:
        facts.append(("dashboard", base_url + weekly_report.dashboard_path(notice.ruleset)))
    return facts


def _section(notice: Notice, base_url: str) -> _Section:
    data = notice.data
    path = rules.page_path(notice.event_type, notice.ruleset, data)
    if notice.event_type == "report.weekly":
        link = f"{base_url}{path}" if base_url and path else None
        told = [*_report_facts(notice, base_url), ("occurred at", notice.occurred_at.isoformat()),
                ("event id", notice.event_id)]
        return _Section(rules.summary(notice.event_type, notice.ruleset, data), link, told)
    facts: list[tuple[str, str]] = []
    if data.get("due_at"):
        facts.append(("due", str(data["due_at"])))
    if data.get("skipped"):
        facts.append(("passed over (not paged)", ", ".join(map(str, data["skipped"]))))
    if notice.decision is not None:
        facts.append(("input", json.dumps(notice.decision.input, sort_keys=True,
                                          ensure_ascii=False, default=str)))
        facts.append(("rules that fired", _fired(notice.decision)))
    if data.get("decision_id"):
        facts.append(("decision", str(data["decision_id"])))
    facts += [(key, str(value)) for key, value in data.items()
              if value not in (None, "", {}, []) and key not in _SHOWN_ELSEWHERE]
    facts += [("occurred at", notice.occurred_at.isoformat()), ("event id", notice.event_id)]
    link = f"{base_url}{path}" if base_url and path else None
    return _Section(rules.summary(notice.event_type, notice.ruleset, data), link, facts)


def _text(section: _Section) -> str:
    lines = [section.sentence + "."]
    if section.link:
        lines.append(f"Open it: {section.link}")
    lines.append("")
    lines += [f"{key}: {value}" for key, value in section.facts]
    return "\n".join(lines) + "\n"


def _html(section: _Section) -> str:
    link = (f'<p><a href="{html.escape(section.link)}">Open it</a></p>'
            if section.link else "")
    rows = "".join(f'<tr><th align="left">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>'
                   for k, v in section.facts)
    return f"<p>{html.escape(section.sentence)}.</p>{link}<table>{rows}</table>"


def email_content(notices: Sequence[Notice], base_url: str = "") -> tuple[str, str, str]:
    """Subject, plain text and HTML of the email telling ``notices`` (one, or a digest of
    several for one person, oldest first)."""
    sections = [_section(n, base_url) for n in sorted(notices, key=lambda n: n.occurred_at)]
    if len(sections) == 1:
        [only] = sections
        body = f"<!DOCTYPE html><html><body>{_html(only)}</body></html>"
        return f"[rules-service] {only.sentence}", _text(only), body
    subject = (f"[rules-service] {len(sections)} notices for you: {sections[0].sentence}, "
               f"and {len(sections) - 1} more")
    intro = f"{len(sections)} notices since the last email."
    text = intro + "\n\n" + "\n---\n\n".join(_text(s) for s in sections)
    body = ("<!DOCTYPE html><html><body>" + f"<p>{html.escape(intro)}</p><hr>"
            + "<hr>".join(_html(s) for s in sections) + "</body></html>")
    return subject, text, body
