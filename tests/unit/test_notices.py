"""The emails people read: one notice, or a digest; links to the pages, the decision's
input, the rules that fired and the due time."""

from __future__ import annotations

from datetime import UTC, datetime

from rules_service.domain.escalations import DecisionFacts
from rules_service.services.notices import Notice, email_content

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DECISION = DecisionFacts({"amount": 9000, "category": "travel"}, "escalate",
                         [{"id": "over-manager-limit", "reason": "Above the manager limit"}],
                         ["over-manager-limit"], False, None, AT)


def opened(escalation_id: str) -> Notice:
    return Notice(f"ev-{escalation_id}", "escalation.opened", AT, "expense-approval",
                  {"escalation_id": escalation_id, "decision_id": "dec-1",
                   "to_role": "approver", "due_at": "2026-12-01T16:00:00+00:00"}, DECISION)


def test_an_escalation_notice_carries_link_input_fired_rules_and_due_time() -> None:
    subject, text, page = email_content([opened("e1")], "https://rules.example.com")
    assert subject == ("[rules-service] an expense-approval decision needs the approver by "
                       "2026-12-01T16:00:00+00:00")
    assert "Open it: https://rules.example.com/escalations#esc-e1" in text
    assert 'input: {"amount": 9000, "category": "travel"}' in text
    assert "rules that fired: over-manager-limit (Above the manager limit)" in text
    assert "due: 2026-12-01T16:00:00+00:00" in text
    assert 'href="https://rules.example.com/escalations#esc-e1"' in page


def test_without_a_base_url_there_is_no_link() -> None:
    _, text, page = email_content([opened("e1")])
    assert "Open it" not in text and "href" not in page


def test_a_digest_tells_every_notice_in_one_email() -> None:
    subject, text, _ = email_content([opened(f"e{i}") for i in range(3)],
                                     "https://rules.example.com")
    assert subject.startswith("[rules-service] 3 notices for you: an expense-approval "
                              "decision needs the approver")
    assert subject.endswith("and 2 more")
    for i in range(3):
        assert f"https://rules.example.com/escalations#esc-e{i}" in text
