"""The pages in a real headless Chromium against the real server (``rules-service demo``):
each of the product's people does their job in the browser.

Screenshots of every page are written to a temporary directory, or to the directory
RULES_SERVICE_SCREENSHOTS names (``make screenshots`` sets it to docs/screenshots/ to
refresh the README's pictures on purpose).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from rules_service.adapters.orm import EscalationRow
from tests.conftest import throwaway_database
from tests.e2e import browser
from tests.e2e.support import ROOT, Server, free_port, running, server_env

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not browser.available(),
                                 reason="needs chromium and chromium-driver (apt-get)")]

RULESET = "expense-approval"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], str]]:
    """`rules-service demo` on a throwaway database; its tokens, passwords and database URL."""
    workdir = tmp_path_factory.mktemp("browser")
    tokens_path = workdir / "instance" / "demo-tokens.json"
    port = free_port()
    args = ["demo", "--port", str(port), "--rulesets", str(ROOT / "rulesets"),
            "--tokens", str(tokens_path)]
    with throwaway_database(workdir) as url, \
            running(args, workdir, server_env(url), port) as server:
        server.tokens.update(json.loads(tokens_path.read_text()))
        passwords = json.loads((workdir / "instance" / "demo-passwords.json").read_text())
        yield server, passwords, url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: RULES_SERVICE_SCREENSHOTS, else a temporary directory
    (a test run never rewrites the tracked docs/screenshots/)."""
    chosen = os.environ.get("RULES_SERVICE_SCREENSHOTS", "").strip()
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


def sign_in(driver: Any, server: Server, name: str, password: str) -> None:
    """Fills the sign-in form as a person would."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(server.base + "/sign-in")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    browser.wait_for(driver, lambda d: f"Signed in as {name}" in text_of(d, "header"))


def text_of(driver: Any, css: str) -> str:
    """The visible text of the first element matching ``css`` ('' if there is none)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:  # replaced while read: the next poll sees it
        return ""
    except WebDriverException as exc:
        # Chromium 156 reports an element replaced by a navigation while it is read as an
        # inspector error instead of a stale reference; the next poll sees the new page.
        if "does not belong to the document" in str(exc.msg):
            return ""
        raise


def set_editor(driver: Any, content: str) -> None:
    """Replaces the YAML editor's text (in CodeMirror, as typing would change it)."""
    driver.execute_script(
        "document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0]);", content)


def editor_text(driver: Any) -> str:
    """The YAML editor's text."""
    return str(driver.execute_script(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue();"))


def record_decisions(server: Server) -> str:
    """Claims the expense tool sends; returns the id of one escalated to the approver."""
    claims = [{"amount": 20, "category": "meals"},
              {"amount": 550, "category": "travel", "has_receipt": True},
              {"amount": 580, "category": "software", "has_receipt": True},
              {"amount": 80, "category": "meals"},
              {"amount": 1800, "category": "hardware", "has_receipt": True}]
    escalation = ""
    for claim in claims:
        status, body, _ = server.call("POST", f"/v1/rulesets/{RULESET}/evaluate",
                                      {"input": claim}, who="demo-automation")
        assert status == 200, body
        if body["escalation"] and body["escalation"]["to_role"] == "approver":
            escalation = body["escalation"]["id"]
    assert escalation
    return str(escalation)


def make_overdue(url: str, escalation: str) -> None:
    """Moves an escalation's due time into the past (the hours waited, without the wait)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(EscalationRow).where(EscalationRow.id == escalation)
                         .values(due_at=datetime.now(UTC) - timedelta(hours=1)))
    finally:
        engine.dispose()


def test_each_person_does_their_job_in_the_browser(
        demo: tuple[Server, dict[str, str], str], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    server, passwords, url = demo
    escalation = record_decisions(server)
    make_overdue(url, escalation)

    with browser.chromium() as driver:
        # An unsigned visitor meets the sign-in page.
        driver.get(server.base + "/")
        assert "/sign-in" in driver.current_url
        browser.screenshot(driver, shots, "sign-in")

        # The business owner changes a threshold in the typed form...
        sign_in(driver, server, "finance-lead", passwords["finance-lead"])
        browser.screenshot(driver, shots, "rulesets")
        driver.get(f"{server.base}/rulesets/{RULESET}")
        assert "finance-deputy" in driver.page_source and "Normal steps" in driver.page_source
        browser.screenshot(driver, shots, "ruleset-before")
        driver.get(f"{server.base}/rulesets/{RULESET}/propose")
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))
        # Version 2 is already open on the same base: said before proposing.
        assert "version 2 by rules-dev (pending" in text_of(driver, "#open-versions")
        browser.screenshot(driver, shots, "propose-open-versions")
        limit = driver.find_element(By.CSS_SELECTOR, "[data-threshold=auto_approve_limit]")
        limit.clear()
        limit.send_keys("600")
        browser.wait_for(driver, lambda d: "auto_approve_limit: 600" in editor_text(d))
        content = editor_text(driver)

        # ...mistypes a threshold's name in a rule, and sees the problem with its line...
        broken = content.replace("amount <= thresholds.auto_approve_limit",
                                 "amount <= thresholds.auto_aprove_limit")
        line = next(i for i, t in enumerate(broken.splitlines(), 1) if "auto_aprove" in t)
        set_editor(driver, broken)
        problem = browser.wait_for(driver, lambda d: text_of(d, "#problems li"))
        assert problem.startswith(f"rule 9 (when), line {line}:") and "auto_aprove_limit" in problem

        # ...fixes it, tries a claim, sees the changes and their impact, and proposes.
        set_editor(driver, content)
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))
        samples = driver.find_element(By.ID, "samples")
        samples.clear()
        samples.send_keys('{"amount": 550, "category": "travel", "has_receipt": true}')
        driver.find_element(By.ID, "try-button").click()
        browser.wait_for(driver, lambda d: d.find_elements(
            By.CSS_SELECTOR, "[data-side=draft] [data-outcome]"))
        # The active version's answer beside the draft's, each with why.
        assert text_of(driver, "[data-side=active] h3") == "Active version 1"
        assert text_of(driver, "[data-side=active] [data-outcome]") == "escalate"
        assert text_of(driver, "[data-side=draft] [data-outcome]") == "approve"
        assert "small-expense: amount 550 <= thresholds.auto_approve_limit 600" in \
            text_of(driver, "[data-side=draft] .why-summary")
        driver.find_element(By.CSS_SELECTOR, "[data-side=active] details summary").click()
        failed = text_of(driver, "[data-side=active] [data-rule=small-expense] li.fails")
        assert "amount = 550" in failed and "(misses by 50)" in failed
        driver.execute_script("document.getElementById('try-heading').scrollIntoView()")
        browser.screenshot(driver, shots, "try-it")
        driver.find_element(By.ID, "preview-button").click()
        browser.wait_for(driver, lambda d: text_of(d, "#preview-impact"))
        assert "Raised auto_approve_limit from 500 to 600" in text_of(driver, "#preview-summary")
        assert "2 change outcome" in text_of(driver, "#preview-impact")
        browser.screenshot(driver, shots, "propose")
        driver.find_element(By.ID, "note").send_keys("pay more travel claims at once")
        driver.find_element(By.ID, "propose-button").click()
        browser.wait_for(driver, lambda d: "/versions/3" in d.current_url)

        # The author is refused on the review page, and told why; and told again which
        # other version is open on the same base.
        assert "finance-lead is the author" in text_of(driver, "#cannot-sign")
        assert "version 2 by rules-dev (pending)" in text_of(driver, "#open-alongside")
        browser.screenshot(driver, shots, "proposed-open-alongside")

        # The controller's home page says what waits for them, and the navigation counts
        # it; the sign-off is one click away.
        sign_in(driver, server, "controller", passwords["controller"])
        driver.get(server.base + "/")
        waiting = text_of(driver, "#waiting")
        assert f"Review {RULESET} version 3" in waiting and "Escalations you may resolve" \
            in waiting
        counted = int(text_of(driver, "header nav .count"))
        assert counted == len(driver.find_elements(
            By.CSS_SELECTOR, "#waiting-signoffs li, #waiting-escalations li"))
        browser.screenshot(driver, shots, "waiting")
        driver.find_element(By.LINK_TEXT, f"Review {RULESET} version 3").click()

        # Before signing, the approver runs the version in shadow on live claims and reads,
        # beside the replayed impact, where it decides otherwise; the worker does the work.
        driver.find_element(By.CSS_SELECTOR, "#shadow-start button").click()
        browser.wait_for(driver, lambda d: "now runs in shadow" in text_of(d, ".flash"))
        for claim in ({"amount": 550, "category": "travel", "has_receipt": True},
                      {"amount": 20, "category": "meals"}):
            status, body, _ = server.call("POST", f"/v1/rulesets/{RULESET}/evaluate",
                                          {"input": claim}, who="demo-automation")
            assert status == 200, body

        def shadowed(d: Any) -> bool:
            d.refresh()
            return "Of 2 sampled" in text_of(d, "#shadow-figures")

        browser.wait_for(driver, shadowed)
        assert "1 decided differently" in text_of(driver, "#shadow-figures")
        assert "escalate → approve: 1" in text_of(driver, "#shadow-changes")
        browser.screenshot(driver, shots, "review-shadow")

        # The approver and the business owner's backup approve; each is told where the
        # version stands, and it goes live.
        for who in ("controller", "finance-deputy"):
            if who != "controller":
                sign_in(driver, server, who, passwords[who])
                driver.get(f"{server.base}/rulesets/{RULESET}/versions/3")
            if who == "controller":
                assert "Raised auto_approve_limit from 500 to 600" in driver.page_source
                assert "changes outcome" in driver.page_source or "change outcome" in \
                    driver.page_source
                browser.screenshot(driver, shots, "review")
            driver.find_element(By.CSS_SELECTOR, "input[name=decision][value=approve]").click()
            driver.find_element(By.ID, "comment").send_keys("agreed")
            driver.find_element(By.CSS_SELECTOR, "#signoff-heading ~ form button").click()
            browser.wait_for(driver, lambda d: "by you as" in text_of(d, ".flash"))
            if who == "controller":
                assert text_of(driver, ".flash") == (
                    "Approved by you as approver; still waiting for the business owner "
                    "(finance-deputy)")
                assert not driver.find_elements(By.ID, "cannot-sign")
                browser.screenshot(driver, shots, "signed-off")
            else:
                assert "version 3 is active now" in text_of(driver, ".flash")
        assert "This version is live" in text_of(driver, "#version-state")
        assert "it ended: activated" in text_of(driver, "#shadow-state")

        # An operator sees only what they may resolve; everyone's queue says who may
        # instead of offering a form they cannot send.
        sign_in(driver, server, "ops-oncall", passwords["ops-oncall"])
        driver.get(f"{server.base}/escalations")
        assert not driver.find_elements(By.CSS_SELECTOR, f"#esc-{escalation}")
        driver.get(f"{server.base}/escalations?whose=everyone&state=overdue")
        assert not driver.find_elements(
            By.CSS_SELECTOR, f"form[action='/escalations/{escalation}/resolve']")
        assert "You may not resolve this one" in text_of(driver, f"#esc-{escalation}")
        browser.screenshot(driver, shots, "escalations-operator")

        # A mistyped address is a page, not an API error.
        driver.get(f"{server.base}/rulesets-typo")
        assert text_of(driver, "h1") == "Not found"
        assert "there is no page at /rulesets-typo" in text_of(driver, ".flash.error")
        browser.screenshot(driver, shots, "not-found")
        status, body, _ = server.call("GET", f"/v1/rulesets/{RULESET}", who="demo-admin")
        assert body["active_version"] == 3
        driver.get(f"{server.base}/rulesets/{RULESET}/versions/2")
        assert "version 3 went live on top of its base" in text_of(driver, "#version-state")
        browser.screenshot(driver, shots, "stale")

        # A change touching every rule opens collapsed: the count first, each rule closed.
        _, live, _ = server.call("GET", f"/v1/rulesets/{RULESET}/versions/3", who="demo-admin")
        large = live["content"].replace("    reason: ", "    reason: Reviewed. ").replace(
            "    description: ", "    description: Reviewed. ")
        status, body, _ = server.call("POST", f"/v1/rulesets/{RULESET}/versions",
                                      {"content": large, "note": "wording"}, who="demo-admin")
        assert status == 201, body
        driver.get(f"{server.base}/rulesets/{RULESET}/versions/{body['version']}")
        assert "changes to 10 rules" in text_of(driver, "#change-count")
        sections = driver.find_elements(By.CSS_SELECTOR, "details.change")
        assert sections and not any(d.get_attribute("open") for d in sections)
        sections[0].find_element(By.TAG_NAME, "summary").click()
        assert "Reviewed." in sections[0].text
        browser.screenshot(driver, shots, "review-large")

        # A form posted without its CSRF token is refused.
        sign_in(driver, server, "cfo", passwords["cfo"])
        driver.get(f"{server.base}/escalations?state=overdue&ruleset={RULESET}")
        form = f"form[action='/escalations/{escalation}/resolve']"
        driver.execute_script(f"document.querySelector(\"{form} input[name=csrf_token]\")"
                              ".remove()")
        driver.find_element(By.CSS_SELECTOR, f"{form} input[value=approve]").click()
        driver.find_element(By.CSS_SELECTOR, f"{form} button").click()
        browser.wait_for(driver, lambda d: "Refused" in text_of(d, "h1"))
        assert "security token" in text_of(driver, ".flash.error")

        # The approver's backup, working the queue, resolves the overdue escalation.
        driver.get(f"{server.base}/escalations?state=overdue&ruleset={RULESET}")
        assert "overdue" in text_of(driver, f"#esc-{escalation} summary")
        assert "over-manager-limit" in text_of(driver, f"#esc-{escalation}")
        browser.screenshot(driver, shots, "escalations")
        driver.find_element(By.CSS_SELECTOR, f"{form} input[value=approve]").click()
        driver.find_element(By.CSS_SELECTOR, f"{form} input[name=comment]").send_keys("ok")
        driver.find_element(By.CSS_SELECTOR, f"{form} button").click()
        browser.wait_for(driver, lambda d: "Resolved: you approved" in text_of(d, ".flash"))
        status, body, _ = server.call("GET", "/v1/escalations?status=open", who="demo-admin")
        assert escalation not in {e["id"] for e in body["escalations"]}

        # The demo's mail: the overdue notice reached the approver's backup at once, with
        # its link, input and the rules that fired.
        def overdue_notice(d: Any) -> str:
            d.get(f"{server.base}/mail")
            found = [e.get_attribute("textContent")
                     for e in d.find_elements(By.CSS_SELECTOR, "main details")]
            return next((t for t in found if "is overdue" in t), "")
        notice = browser.wait_for(driver, overdue_notice)
        assert "cfo@demo.example" in notice
        assert f"{server.base}/escalations#esc-{escalation}" in notice
        assert "over-manager-limit" in notice and "input:" in notice
        browser.screenshot(driver, shots, "mail")

        # Decisions and the why of one.
        driver.get(f"{server.base}/decisions?ruleset={RULESET}")
        browser.screenshot(driver, shots, "decisions")
        driver.find_element(By.CSS_SELECTOR, "tbody a").click()
        assert "Rules that fired" in driver.page_source
        # Found by an input field's value and the caller's start; why, in values.
        driver.get(f"{server.base}/decisions?ruleset={RULESET}&caller=demo-auto"
                   "&field=category&value=software")
        assert len(driver.find_elements(By.CSS_SELECTOR, "tbody a")) == 1
        browser.screenshot(driver, shots, "decisions-search")
        driver.find_element(By.CSS_SELECTOR, "tbody a").click()
        summary = text_of(driver, "[data-summary]")
        assert "small-expense" in summary, summary
        missed = text_of(driver, "[data-rule=small-expense] li.fails")
        assert "amount = 580" in missed and "(misses by 80)" in missed
        browser.screenshot(driver, shots, "decision")

        # The operator on call rolls back from the top of the ruleset page, whose runbook
        # reads as prose: what it changes is shown first, nothing happens until confirmed.
        sign_in(driver, server, "ops-oncall", passwords["ops-oncall"])
        driver.get(f"{server.base}/rulesets/{RULESET}")
        panel = driver.find_element(By.ID, "rollback")
        assert panel.location["y"] < driver.find_element(By.ID, "versions").location["y"]
        runbook = text_of(driver, ".runbook")
        assert "who have 4 hours to resolve it" in runbook, runbook
        assert "Window hours" not in runbook and "Method" not in runbook
        assert "Engine fallback (the service could not decide):" in runbook
        panel.find_element(By.CSS_SELECTOR, "button").click()
        browser.wait_for(driver, lambda d: "What changes from version 3 to version 1"
                         in text_of(d, "#rollback-preview"))
        assert "auto_approve_limit from 600 to 500" in text_of(driver, "#rollback-preview")
        status, body, _ = server.call("GET", f"/v1/rulesets/{RULESET}", who="demo-admin")
        assert body["active_version"] == 3  # the preview changed nothing
        browser.screenshot(driver, shots, "rollback-preview")
        driver.find_element(By.ID, "reason").send_keys("600 lets through claims we must see")
        driver.find_element(By.CSS_SELECTOR, "#confirm-rollback button").click()
        browser.wait_for(driver, lambda d: "Version 1 is active again" in text_of(d, ".flash"))
        row = driver.find_element(By.XPATH, "//h2[@id='versions']/following-sibling::div[1]"
                                            "//tr[th/a[normalize-space()='3']]")
        assert "rolled back" in row.text
        browser.screenshot(driver, shots, "ruleset")

        # The dashboard's charts have data, and mark when the version changed.
        driver.get(f"{server.base}/dashboard?window=1h&ruleset={RULESET}")
        bars = driver.find_elements(By.CSS_SELECTOR, "[data-chart=throughput] rect.bar")
        assert bars
        assert driver.find_elements(By.CSS_SELECTOR, "[data-chart=outcomes] rect.bar")
        marks = [m.get_attribute("textContent") for m in driver.find_elements(
            By.CSS_SELECTOR, "[data-chart=throughput] g.marker")]
        assert marks and "rolled back to by ops-oncall" in marks[-1], marks
        browser.screenshot(driver, shots, "dashboard")
        driver.get(f"{server.base}/dashboard?window=1h")
        assert driver.find_elements(By.CSS_SELECTOR, "[data-chart=throughput] g.marker")
        browser.screenshot(driver, shots, "dashboard-all")
        # The weekly report, one click from the dashboard: each figure beside the week before.
        driver.find_element(By.ID, "weekly-report-link").click()
        assert driver.current_url.startswith(f"{server.base}/reports/weekly")
        assert "each figure beside the week of" in driver.find_element(By.ID, "report-week").text
        section = driver.find_element(By.ID, f"report-{RULESET}")
        # Its decisions were all made this week, so the last complete week had none.
        assert "No decisions this week, nor the week before." in section.text
        assert "business owner:" in section.text
        browser.screenshot(driver, shots, "weekly-report")
        # Every page above worked under its security policy, which refused nothing.
        assert browser.policy_violations(driver) == []

    # The review page at a phone's width.
    with browser.chromium(width=390, height=800, phone=True) as phone:
        sign_in(phone, server, "controller", passwords["controller"])
        phone.get(f"{server.base}/rulesets/{RULESET}/versions/3")
        overflow = phone.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1")
        assert not overflow
        browser.screenshot(phone, shots, "review-phone")
        # The home page at a phone's width: nothing cut, nothing to scroll sideways.
        phone.get(server.base + "/")
        assert "Waiting for you" in phone.page_source
        assert not phone.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1")
        wraps = phone.execute_script(
            "return [...document.querySelectorAll('.table-wrap')]"
            ".some(w => w.scrollWidth > w.clientWidth + 1)")
        assert not wraps
        browser.screenshot(phone, shots, "home-phone")
        # The ruleset page at a phone's width, as the operator who may roll back sees it.
        sign_in(phone, server, "ops-oncall", passwords["ops-oncall"])
        phone.get(f"{server.base}/rulesets/{RULESET}")
        assert phone.find_elements(By.CSS_SELECTOR, "#rollback select")
        assert not phone.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1")
        browser.screenshot(phone, shots, "ruleset-phone")


def test_an_operations_owner_pauses_and_resumes_in_the_browser(
        demo: tuple[Server, dict[str, str], str], shots: Path) -> None:
    """One form with the reason pauses the ruleset; every decision then goes to a person
    (the rules' answer kept), the list and the runbook say so, and Resume ends it."""
    from selenium.webdriver.common.by import By

    server, passwords, _ = demo
    claim = {"input": {"amount": 20, "category": "meals"}}
    with browser.chromium() as driver:
        sign_in(driver, server, "ops-oncall", passwords["ops-oncall"])
        driver.get(f"{server.base}/rulesets/{RULESET}")
        driver.find_element(By.ID, "pause-reason").send_keys("card fraud wave")
        driver.find_element(By.ID, "pause-button").click()
        browser.wait_for(driver, lambda d: "is paused" in text_of(d, ".flash"))
        sentence = text_of(driver, "#paused-sentence")
        assert "is paused by ops-oncall since" in sentence and "card fraud wave" in sentence
        assert "Paused by ops-oncall" in text_of(driver, ".runbook")
        browser.screenshot(driver, shots, "paused")

        def decided(paused: bool) -> Any:
            _, body, _ = server.call("POST", f"/v1/rulesets/{RULESET}/evaluate", claim,
                                     who="demo-automation")
            return body if body["paused"] is paused else None

        body = browser.wait_for(driver, lambda d: decided(True), timeout=5)
        assert (body["outcome"], body["paused_outcome"]) == ("escalate", "approve")
        driver.get(f"{server.base}/")
        assert "paused by ops-oncall" in text_of(driver, "table.rulesets")
        assert "card fraud wave" in text_of(driver, "#waiting-paused")

        driver.get(f"{server.base}/rulesets/{RULESET}")
        driver.find_element(By.ID, "resume-button").click()
        browser.wait_for(driver, lambda d: "running again" in text_of(d, ".flash"))
        assert driver.find_elements(By.ID, "pause-button")
        assert browser.wait_for(driver, lambda d: decided(False), timeout=5)["outcome"] \
            == "approve"
        assert browser.policy_violations(driver) == []
