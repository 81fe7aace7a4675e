"""Rulesets, versions, sign-offs, withdraw, diff, rollback, runbook and audit over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from rules_service.adapters import rollup_fold
from rules_service.bootstrap import Container
from rules_service.domain.decision import Evaluation
from rules_service.domain.ruleset import Outcome
from rules_service.services import decisions, principals
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"


def propose(api: Api, who: str = "root", limit: int = 100, **body: Any) -> Any:
    if "content" not in body:
        body.setdefault("definition", definition(limit))
    return api.post(f"{BASE}/versions", body, who=who)


def approve(api: Api, number: int, signers: tuple[str, ...] = ("biz", "appr")) -> Any:
    response = None
    for who in signers:
        response = api.post(f"{BASE}/versions/{number}/signoffs",
                            {"decision": "approve", "comment": "fine"}, who=who)
        assert response.status_code == 201, response.get_json()
    return response


def active_v1(api: Api) -> None:
    assert propose(api).status_code == 201
    approve(api, 1)


def with_v2_active(api: Api) -> None:
    active_v1(api)
    assert propose(api, "dev", limit=200).status_code == 201
    approve(api, 2)


# --------------------------------------------------------------------------- rulesets


def test_listing_shows_active_and_pending_versions(api: Api) -> None:
    assert api.get("/v1/rulesets").get_json() == {"rulesets": []}
    active_v1(api)
    propose(api, "dev", limit=150)
    response = api.get("/v1/rulesets", who="bot")
    assert response.status_code == 200
    [summary] = response.get_json()["rulesets"]
    assert (summary["name"], summary["title"], summary["active_version"],
            summary["pending_versions"]) == (NAME, "Refunds", 1, [2])


def test_ruleset_detail_names_owners_and_signoff_roles(api: Api) -> None:
    active_v1(api)
    body = api.get(BASE, who="stranger").get_json()
    assert body["owners"]["approver"] == {"primary": "appr", "backup": "appr-backup"}
    assert body["signoff"] == ["business_owner", "approver"]
    assert [v["version"] for v in body["versions"]] == [1]


def test_unknown_ruleset_is_404_everywhere(api: Api) -> None:
    for path in ("/v1/rulesets/nope", "/v1/rulesets/nope/versions",
                 "/v1/rulesets/nope/versions/1", "/v1/rulesets/nope/runbook",
                 "/v1/rulesets/nope/audit", "/v1/rulesets/nope/diff"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"


# --------------------------------------------------------------------------- propose


def test_admin_proposes_first_version(api: Api) -> None:
    response = propose(api, note="first cut")
    assert response.status_code == 201
    body = response.get_json()
    assert (body["version"], body["status"], body["base_version"], body["author"],
            body["note"]) == (1, "pending", None, "root", "first cut")
    assert body["required_signoffs"] == ["business_owner", "approver"]
    assert response.headers["Location"].endswith(f"{BASE}/versions/1")


def test_propose_refuses_owners_who_are_not_principals_naming_each(api: Api) -> None:
    owners = definition()["owners"]
    owners["operations_owner"] = {"primary": "cs-lead", "backup": "ops-backup"}
    owners["approver"]["backup"] = "apr-backup"
    response = propose(api, definition=definition(owners=owners))
    assert response.status_code == 422
    details = error_of(response)["details"]
    assert [(d["place"], d["message"].split()[0]) for d in details] == [
        ("owners.operations_owner.primary", "cs-lead"), ("owners.approver.backup", "apr-backup")]
    assert api.get(BASE).status_code == 404  # nothing stored


def test_a_revoked_principal_cannot_be_named_owner(api: Api, container: Container) -> None:
    principals.revoke_principal(container.uow(), "appr-backup")
    response = propose(api)
    assert response.status_code == 422
    assert [d["place"] for d in error_of(response)["details"]] == ["owners.approver.backup"]


def test_a_proposal_from_the_newest_version_is_accepted(api: Api) -> None:
    with_v2_active(api)
    response = propose(api, "dev", limit=300, base_version=2)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["base_version"] == 2


def test_a_proposal_from_a_stale_base_is_409_naming_the_versions_in_between(api: Api) -> None:
    with_v2_active(api)
    assert propose(api, "dev", limit=300).status_code == 201  # version 3, pending
    response = propose(api, "dev", limit=400, base_version=1, note="from my old copy")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "stale_base"
    assert [(d["version"], d["status"]) for d in error["details"]] == [
        (2, "active"), (3, "pending")]
    assert "version 2" in error["message"] and "version 3" in error["message"]
    assert [v["version"] for v in api.get(f"{BASE}/versions").get_json()["versions"]] == \
        [1, 2, 3]


def test_versions_that_never_took_effect_do_not_make_a_base_stale(api: Api) -> None:
    active_v1(api)
    assert propose(api, "dev", limit=300).status_code == 201
    api.post(f"{BASE}/versions/2/signoffs", {"decision": "reject"}, who="appr")
    assert propose(api, "dev", limit=400, base_version=1).status_code == 201


def test_an_unknown_base_version_is_422(api: Api) -> None:
    active_v1(api)
    response = propose(api, "dev", limit=400, base_version=9)
    assert response.status_code == 422
    assert [d["place"] for d in error_of(response)["details"]] == ["base_version"]


def test_the_diff_lists_what_a_proposal_takes_back_of_newer_versions(api: Api) -> None:
    with_v2_active(api)  # version 2 raised the limit from 100 to 200
    stale = definition(100, description="Decides refunds, edited on an old copy.")
    assert propose(api, "dev", definition=stale).status_code == 201
    body = api.get(f"{BASE}/diff").get_json()
    assert [(u["version"], u["author"], u["summary"]) for u in body["undoes"]] == [
        (2, "dev", ["Raised limit from 100 to 200"])]


def test_the_diff_of_an_ordinary_proposal_takes_nothing_back(api: Api) -> None:
    with_v2_active(api)
    assert propose(api, "dev", limit=300, base_version=2).status_code == 201
    assert api.get(f"{BASE}/diff").get_json()["undoes"] == []


def test_yaml_content_is_accepted_and_stored_verbatim(api: Api) -> None:
    text = "# refunds policy\n" + yaml.safe_dump(definition(), sort_keys=False)
    response = propose(api, content=text)
    assert response.status_code == 201, response.get_json()
    assert api.get(f"{BASE}/versions/1").get_json()["content"] == text


def test_non_admin_cannot_propose_a_first_version(api: Api) -> None:
    response = propose(api, "dev")
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "forbidden" and "admin" in error["message"]


def test_invalid_ruleset_lists_every_problem(api: Api) -> None:
    bad = definition()
    bad["rules"][0]["when"] = "amount > "
    bad["rules"][1]["then"] = "maybe"
    bad["thresholds"]["limit"] = [1, 2]
    response = propose(api, definition=bad)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "ruleset_invalid"
    places = {d["place"] for d in error["details"]}
    assert {"rules[0].when", "rules[1].then"} <= places
    assert any(p.startswith("thresholds") for p in places)
    assert api.get(BASE).status_code == 404


def test_yaml_syntax_error_is_422_with_its_line(api: Api) -> None:
    response = propose(api, content="name: refunds\nrules: [\n  - id: x\n")
    assert response.status_code == 422
    details = error_of(response)["details"]
    assert details and all("message" in d for d in details)


def test_failing_embedded_test_blocks_the_version(api: Api) -> None:
    bad = definition()
    bad["tests"][0]["expect"]["outcome"] = "reject"
    response = propose(api, definition=bad)
    assert response.status_code == 422
    assert "tiny refund is approved" in str(error_of(response)["details"])


def test_proposal_identical_to_active_is_409(api: Api) -> None:
    active_v1(api)
    response = propose(api, "dev")
    assert response.status_code == 409
    assert error_of(response)["code"] == "identical_to_active"


def test_proposal_body_needs_exactly_one_of_content_and_definition(api: Api) -> None:
    for body in ({}, {"content": "x", "definition": {}}, {"note": "n"}):
        response = api.post(f"{BASE}/versions", body)
        assert response.status_code == 422, body
        assert error_of(response)["code"] == "validation_failed"


def test_proposal_body_fields_are_named_when_wrong(api: Api) -> None:
    response = api.post(f"{BASE}/versions", {"definition": [], "note": 5,
                                              "effective_at": "soon", "extra": 1})
    assert response.status_code == 422
    places = {d["place"] for d in error_of(response)["details"]}
    assert {"definition", "note", "effective_at", "extra"} <= places


def test_scheduled_version_keeps_its_effective_time(api: Api) -> None:
    response = propose(api, effective_at="2999-01-01T00:00:00Z")
    assert response.status_code == 201
    assert response.get_json()["effective_at"].startswith("2999-01-01T00:00:00")
    approve(api, 1)
    body = api.get(f"{BASE}/versions/1").get_json()
    assert body["status"] == "approved"
    assert api.get(BASE).get_json()["active_version"] is None


# --------------------------------------------------------------------------- sign-offs


def test_both_signoffs_activate_the_version(api: Api) -> None:
    propose(api)
    first = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who="biz")
    assert first.status_code == 201
    assert first.get_json()["status"] == "pending"
    assert first.get_json()["missing_signoffs"] == ["approver"]
    second = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who="appr")
    assert second.get_json()["status"] == "active"
    assert [(s["role"], s["principal"]) for s in
            api.get(f"{BASE}/versions/1").get_json()["signoffs"]] == \
        [("business_owner", "biz"), ("approver", "appr")]


def test_a_signoff_answers_with_the_signoff_and_the_status_not_the_whole_version(
        api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve",
                                                        "comment": "fine"}, who="biz")
    body = response.get_json()
    assert set(body) == {"ruleset", "version", "status", "signoff", "required_signoffs",
                         "missing_signoffs", "effective_at", "activated_at"}
    assert (body["version"], body["status"]) == (1, "pending")
    assert {k: body["signoff"][k] for k in ("role", "principal", "decision", "comment")} == {
        "role": "business_owner", "principal": "biz", "decision": "approve",
        "comment": "fine"}
    assert "content" not in body and "definition" not in body


def test_author_cannot_sign_off_own_version(api: Api) -> None:
    active_v1(api)
    propose(api, "biz", limit=300)
    response = api.post(f"{BASE}/versions/2/signoffs", {"decision": "approve"}, who="biz")
    assert response.status_code == 403
    assert "author" in error_of(response)["message"]


@pytest.mark.parametrize("who", ["dev", "ops", "stranger", "bot"])
def test_non_holders_cannot_sign_off(api: Api, who: str) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who=who)
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_a_rejection_rejects_and_further_signoffs_conflict(api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/signoffs",
                        {"decision": "reject", "comment": "no"}, who="appr")
    assert response.get_json()["status"] == "rejected"
    again = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who="biz")
    assert again.status_code == 409
    assert error_of(again)["code"] == "not_pending"


def test_signing_the_same_version_twice_conflicts(api: Api) -> None:
    propose(api)
    api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who="biz")
    again = api.post(f"{BASE}/versions/1/signoffs", {"decision": "approve"}, who="biz")
    assert again.status_code == 409


def test_signoff_body_is_validated(api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/signoffs", {"decision": "maybe", "comment": 3},
                        who="biz")
    assert response.status_code == 422
    places = {d["place"] for d in error_of(response)["details"]}
    assert places == {"decision", "comment"}


def test_signoff_of_unknown_version_is_404(api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/9/signoffs", {"decision": "approve"}, who="biz")
    assert response.status_code == 404


# --------------------------------------------------------------------------- withdraw


def test_author_withdraws_a_pending_version(api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/withdraw", who="root")
    assert response.status_code == 200
    assert response.get_json()["status"] == "withdrawn"
    again = api.post(f"{BASE}/versions/1/withdraw", {"comment": "again"}, who="root")
    assert again.status_code == 409


def test_only_the_author_withdraws(api: Api) -> None:
    propose(api)
    response = api.post(f"{BASE}/versions/1/withdraw", {"comment": "mine now"}, who="biz")
    assert response.status_code == 403
    assert "author" in error_of(response)["message"]


# --------------------------------------------------------------------------- diff


def test_diff_defaults_to_newest_pending_against_its_base(api: Api) -> None:
    active_v1(api)
    propose(api, "dev", limit=250)
    response = api.get(f"{BASE}/diff")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["from"], body["to"]) == (1, 2)
    assert [c["kind"] for c in body["changes"]] == ["threshold_changed"]
    assert "limit" in body["summary"][0] and "250" in body["summary"][0]


def test_diff_between_named_versions(api: Api) -> None:
    with_v2_active(api)
    body = api.get(f"{BASE}/diff?from=2&to=1").get_json()
    assert (body["from"], body["to"]) == (2, 1)
    assert len(body["changes"]) == 1


def test_diff_impact_replays_recorded_decisions(api: Api) -> None:
    active_v1(api)
    for amount in (50, 150, 180, 300):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    propose(api, "dev", limit=200)
    body = api.get(f"{BASE}/diff?impact=10").get_json()
    impact = body["impact"]
    assert impact["replayed"] == 4
    assert impact["changed"] == 2
    assert impact["transitions"] == {"escalate->approve": 2}


def test_impact_names_only_the_proposals_effects_not_earlier_changes(api: Api) -> None:
    active_v1(api)  # limit 100
    for amount in (150, 250):  # escalated by version 1
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    assert propose(api, "dev", limit=200).status_code == 201
    approve(api, 2)  # an earlier change: 150 is approved from now on
    assert propose(api, "dev", limit=300).status_code == 201  # this change: so is 250
    impact = api.get(f"{BASE}/diff?impact=10").get_json()["impact"]
    assert impact["replayed"] == 2
    assert impact["transitions"] == {"escalate->approve": 1}
    assert [e["input"]["amount"] for e in impact["examples"]] == [250]
    assert impact["drift"] == 1 and impact["drift_transitions"] == {"escalate->approve": 1}


def test_diff_as_markdown_is_a_page_an_approver_reads(api: Api) -> None:
    active_v1(api)
    for amount in (50, 150, 180, 300):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    propose(api, "dev", limit=200)
    response = api.get(f"{BASE}/diff?impact=10&format=markdown", who="appr")
    assert response.status_code == 200
    assert response.mimetype == "text/markdown"
    page = response.get_data(as_text=True)
    assert page.startswith(f"# {NAME}: version 1 → version 2\n")
    assert "- Raised limit from 100 to 200" in page
    assert "**2 would change**" in page
    assert "| escalate → approve | 2 |" in page


def test_the_approvers_page_says_who_proposed_what_who_signed_and_how_to_sign(
        api: Api) -> None:
    active_v1(api)
    assert api.post(f"{BASE}/evaluate", {"input": {"amount": 150}}).status_code == 200
    assert propose(api, "dev", limit=200, note="refunds up to 200 are routine",
                   effective_at="2031-01-01T09:00:00+00:00").status_code == 201
    assert api.post(f"{BASE}/versions/2/signoffs", {"decision": "approve", "comment": "ok"},
                    who="biz").status_code == 201
    page = api.get(f"{BASE}/diff?impact=10&format=markdown", who="appr") \
        .get_data(as_text=True)
    assert "- Proposed by **dev**" in page
    assert "- Note: refunds up to 200 are routine" in page
    assert "- Based on: version 1" in page
    assert "- Takes effect: 2031-01-01T09:00:00+00:00" in page
    assert "- Required sign-offs: business_owner, approver" in page
    assert "| business_owner | biz | approve |" in page
    assert "Still needed: approver (appr, appr-backup)" in page
    assert f"curl -s -X POST http://localhost{BASE}/versions/2/signoffs" in page
    # One decision is one decision.
    assert "the last 1 recorded decision under" in page


def test_markdown_asked_for_without_a_pending_version_is_still_markdown(api: Api) -> None:
    active_v1(api)
    response = api.get(f"{BASE}/diff?format=markdown", who="appr")
    assert response.status_code == 409
    assert response.mimetype == "text/markdown"
    page = response.get_data(as_text=True)
    assert page.startswith("# 409: no pending version")
    assert "from= and to=" in page


def test_the_diff_json_names_the_to_versions_author_and_sign_offs(api: Api) -> None:
    active_v1(api)
    assert propose(api, "dev", limit=200, note="why").status_code == 201
    version = api.get(f"{BASE}/diff").get_json()["version"]
    assert (version["author"], version["note"], version["base_version"]) == ("dev", "why", 1)
    assert version["missing_signoffs"] == ["business_owner", "approver"]


def test_diff_query_is_validated(api: Api) -> None:
    active_v1(api)
    response = api.get(f"{BASE}/diff?from=x&impact=0")
    assert response.status_code == 422
    assert {d["place"] for d in error_of(response)["details"]} == {"from", "impact"}


def test_diff_of_unknown_version_is_404(api: Api) -> None:
    active_v1(api)
    assert api.get(f"{BASE}/diff?from=1&to=7").status_code == 404


# --------------------------------------------------------------------------- rollback


@pytest.mark.parametrize("who", ["ops", "ops-backup", "biz", "biz-backup", "root"])
def test_rollback_restores_the_earlier_version(api: Api, who: str) -> None:
    with_v2_active(api)
    response = api.post(f"{BASE}/rollback", {"to_version": 1, "reason": "bad limit"}, who=who)
    assert response.status_code == 200
    assert response.get_json()["active_version"] == 1
    assert api.get(BASE).get_json()["active_version"] == 1


@pytest.mark.parametrize("who", ["dev", "appr", "stranger", "bot"])
def test_others_cannot_roll_back(api: Api, who: str) -> None:
    with_v2_active(api)
    response = api.post(f"{BASE}/rollback", {"to_version": 1, "reason": "x"}, who=who)
    assert response.status_code == 403


def test_rollback_to_a_never_active_version_conflicts(api: Api) -> None:
    active_v1(api)
    propose(api, "dev", limit=300)
    response = api.post(f"{BASE}/rollback", {"to_version": 2, "reason": "x"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_rollback_target"
    already = api.post(f"{BASE}/rollback", {"to_version": 1, "reason": "x"})
    assert error_of(already)["code"] == "already_active"


def test_rollback_needs_a_version_and_a_reason(api: Api) -> None:
    active_v1(api)
    response = api.post(f"{BASE}/rollback", {"to_version": "1", "reason": ""})
    assert response.status_code == 422
    assert {d["place"] for d in error_of(response)["details"]} == {"to_version", "reason"}


# --------------------------------------------------------------------------- runbook, audit


def test_runbook_as_json_and_markdown(api: Api) -> None:
    active_v1(api)
    body = api.get(f"{BASE}/runbook").get_json()
    assert (body["version"], body["response_time_target"]) == (1, "4h")
    assert body["runbook"]["purpose"] == "Refund quickly."
    markdown = api.get(f"{BASE}/runbook?format=markdown")
    assert markdown.status_code == 200
    assert markdown.mimetype == "text/markdown"
    text = markdown.get_data(as_text=True)
    assert text.startswith("# Runbook: Refunds")
    assert "Refund quickly." in text and "**4h**" in text and "| Approver | appr |" in text


def _live_scene(api: Api, container: Container, clock: FakeClock) -> None:
    """Version 2 active (replacing 1), version 3 pending, an overdue escalation, and one
    fallback among four decisions today."""
    with_v2_active(api)  # limit 200
    assert propose(api, "dev", limit=300).status_code == 201
    for amount in (50, 60, 500):
        assert api.post(f"{BASE}/evaluate", {"input": {"amount": amount}}).status_code == 200
    decisions.record_decision(
        container.uow(), ruleset=NAME, version=2, caller="bot",
        evaluation=Evaluation(Outcome.APPROVE, (), (), fallback=True,
                              fallback_reason="engine timed out", input={"amount": 70}))
    rollup_fold.fold_pending(container.engine)  # what the background fold does within 2 s
    clock.advance(timedelta(hours=5))  # past the 4h target


def test_runbook_json_carries_the_live_state(api: Api, container: Container,
                                             clock: FakeClock) -> None:
    _live_scene(api, container, clock)
    live = api.get(f"{BASE}/runbook", who="ops").get_json()["live"]
    assert live["active"]["version"] == 2 and live["active"]["since"]
    [waiting] = live["open_versions"]
    assert (waiting["version"], waiting["status"], waiting["author"]) == (3, "pending", "dev")
    assert waiting["missing_signoffs"] == [
        {"role": "business_owner", "holders": ["biz", "biz-backup"]},
        {"role": "approver", "holders": ["appr", "appr-backup"]}]
    assert live["escalations"] == {"open": 1, "overdue": 1, "response_time_target": "4h"}
    assert (live["fallbacks"]["count"], live["fallbacks"]["decisions"]) == (1, 4)
    assert live["fallbacks"]["rate"] == pytest.approx(0.25)
    assert live["rollback"]["path"] == f"{BASE}/rollback"
    assert live["rollback"]["body"]["to_version"] == 1
    assert set(live["rollback"]["allowed"]) == {"ops", "ops-backup", "biz", "biz-backup"}


def test_runbook_markdown_shows_the_live_state_and_renders_as_intended(
        api: Api, container: Container, clock: FakeClock) -> None:
    _live_scene(api, container, clock)
    page = api.get(f"{BASE}/runbook?format=markdown", who="ops").get_data(as_text=True)
    assert "## Right now" in page
    assert "- Version 3 by dev: pending, waiting for business_owner (biz, biz-backup); " \
           "approver (appr, appr-backup)" in page
    assert "- Escalations: 1 open, 1 overdue (response-time target 4h)" in page
    assert "- Fallbacks in the last 24 hours: 1 of 4 decisions (25.0%)" in page
    assert f"curl -s -X POST http://localhost{BASE}/rollback" in page
    assert '"to_version": 1' in page
    # The escalation path and the target are separate items, not one run-on paragraph.
    assert "- Path: appr\n- Response-time target: **4h**" in page


def test_runbook_without_active_version_conflicts(api: Api) -> None:
    propose(api)
    response = api.get(f"{BASE}/runbook")
    assert response.status_code == 409
    assert error_of(response)["code"] == "no_active_version"
    assert api.get(f"{BASE}/runbook?format=pdf").status_code == 422


def test_audit_trail_records_every_transition(api: Api) -> None:
    with_v2_active(api)
    api.post(f"{BASE}/rollback", {"to_version": 1, "reason": "bad limit"}, who="ops")
    events = api.get(f"{BASE}/audit", who="bot").get_json()["events"]
    actions = [(e["version"], e["action"], e["actor"]) for e in events]
    assert actions[:4] == [(1, "proposed", "root"), (1, "signed_off", "biz"),
                           (1, "signed_off", "appr"), (1, "approved", "appr")]
    assert actions[-2:] == [(2, "superseded", "ops"), (1, "rolled_back", "ops")]
    assert events[-1]["comment"] == "bad limit"
    only_v2 = api.get(f"{BASE}/audit?version=2").get_json()["events"]
    assert {e["version"] for e in only_v2} == {2}
