"""The propose page's editor in a real headless Chromium: the thresholds form and the YAML
in step both ways, problems on their exact lines with a click to them, Propose off while a
problem stands, and a draft that survives an ended session.

Screenshots go where ``tests/e2e/test_browser.py`` puts them (``make screenshots``:
docs/screenshots/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e import browser
from tests.e2e.support import Server
from tests.e2e.test_browser import RULESET, demo, editor_text, set_editor, shots, sign_in, text_of

__all__ = ["demo", "shots"]  # the fixtures this module's test uses

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not browser.available(),
                                 reason="needs chromium and chromium-driver (apt-get)")]

# The page's next two checks fail: the first cannot reach the server, the second gets a 503.
FAIL_TWO_CHECKS = """
var real = window.fetch, failures = 0;
window.fetch = function (url, options) {
  if (String(url).indexOf("/check") >= 0 && failures < 2) {
    failures += 1;
    if (failures === 1) { return Promise.reject(new TypeError("offline")); }
    return Promise.resolve(new Response(JSON.stringify(
      {error: {code: "unavailable", message: "The database is not answering"}}),
      {status: 503, headers: {"Content-Type": "application/json"}}));
  }
  return real.apply(this, arguments);
};
"""

LIMIT_LINE = "  auto_approve_limit: {}         # paid without review up to this amount"


def field(driver: Any, key: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"[data-threshold={key}]")


def retype(driver: Any, key: str, keys: str) -> None:
    """Selects the field's value, deletes it, and types ``keys``, as a person would."""
    from selenium.webdriver.common.keys import Keys

    box = field(driver, key)
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if keys:
        box.send_keys(keys)


def line_of(driver: Any, key: str) -> str:
    return next(t for t in editor_text(driver).splitlines() if t.lstrip().startswith(key + ":"))


def propose_enabled(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_element(By.ID, "propose-button").is_enabled())


def sign_in_here(driver: Any, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()


def test_the_editor_cannot_corrupt_the_file_and_keeps_the_draft(
        demo: tuple[Server, dict[str, str], str], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    server, passwords, _ = demo
    with browser.chromium() as driver:
        # Signed in before the next page is asked for: a navigation started while the
        # sign-in's POST is still answering would cancel it and meet the sign-in page.
        sign_in(driver, server, "finance-lead", passwords["finance-lead"])
        driver.get(f"{server.base}/rulesets/{RULESET}/propose")
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))
        assert driver.find_elements(By.CSS_SELECTOR, ".CodeMirror .CodeMirror-linenumber")
        assert browser.policy_violations(driver) == []

        # A check the server could not answer (no connection, then a 503) is tried again
        # by itself until it is answered.
        driver.execute_script(FAIL_TWO_CHECKS)
        original = editor_text(driver)
        set_editor(driver, original + "\n")
        browser.wait_for(driver, lambda d: "could not be reached. Checking again"
                         in text_of(d, "#check-status"))
        browser.wait_for(driver, lambda d: "The database is not answering. Checking again"
                         in text_of(d, "#check-status"))
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))
        set_editor(driver, original)
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))

        # Select, Backspace: an empty field is a problem on the field, not in the file.
        retype(driver, "auto_approve_limit", "")
        browser.wait_for(driver, lambda d: text_of(d, "#threshold-auto_approve_limit-problem"))
        assert "enter a number" in text_of(driver, "#threshold-auto_approve_limit-problem")
        assert line_of(driver, "auto_approve_limit") == LIMIT_LINE.format(500)
        assert not propose_enabled(driver)
        browser.screenshot(driver, shots, "editor-empty-field")
        # ...then 800: the file gets 800 with its comment where it was.
        field(driver, "auto_approve_limit").send_keys("800")
        browser.wait_for(driver, lambda d: "800" in line_of(d, "auto_approve_limit"))
        assert line_of(driver, "auto_approve_limit") == LIMIT_LINE.format(800)
        assert text_of(driver, "#threshold-auto_approve_limit-problem") == ""
        browser.wait_for(driver, lambda d: propose_enabled(d))
        # Letters are a problem on the field too; the file keeps 800.
        retype(driver, "manager_limit", "5k")
        browser.wait_for(driver, lambda d: "not a number" in text_of(
            d, "#threshold-manager_limit-problem"))
        assert "manager_limit: 5000 " in line_of(driver, "manager_limit")
        assert not propose_enabled(driver)
        retype(driver, "manager_limit", "5000")
        browser.wait_for(driver, lambda d: propose_enabled(d))

        # A number edited in the file shows in the form.
        good = editor_text(driver)
        driver.find_element(By.CSS_SELECTOR, ".CodeMirror").click()
        set_editor(driver, good.replace("manager_limit: 5000 ", "manager_limit: 6000 "))
        browser.wait_for(driver, lambda d: field(d, "manager_limit").get_attribute("value")
                         == "6000")

        # A key without its ':' on line 33 is reported on line 33; a click goes there.
        lines = good.splitlines()
        at = next(i for i, t in enumerate(lines) if t.lstrip().startswith("manager_limit:"))
        lines[at] = lines[at].replace("manager_limit:", "manager_limit", 1)
        set_editor(driver, "\n".join(lines) + "\n")
        problem = browser.wait_for(driver, lambda d: text_of(d, "#problems li"))
        assert problem.startswith(f"line {at + 1}:"), problem
        assert not propose_enabled(driver)
        driver.find_element(By.CSS_SELECTOR, "#problems li button.goto").click()
        cursor = driver.execute_script(
            "return document.querySelector('.CodeMirror').CodeMirror.getCursor().line;")
        assert cursor == at
        browser.screenshot(driver, shots, "editor-syntax-error")

        # The session ends while the draft is open; Propose says so and the draft survives.
        set_editor(driver, good)
        browser.wait_for(driver, lambda d: propose_enabled(d))
        driver.find_element(By.ID, "note").send_keys("pay more at once")
        driver.delete_cookie("rules_session")
        driver.find_element(By.ID, "propose-button").click()
        browser.wait_for(driver, lambda d: "session has ended" in text_of(d, "main"))
        browser.screenshot(driver, shots, "editor-session-ended")
        driver.find_element(By.ID, "sign-in-again").click()
        sign_in_here(driver, "finance-lead", passwords["finance-lead"])
        browser.wait_for(driver, lambda d: "/propose" in d.current_url
                         and text_of(d, "#draft-restored-text"))
        assert "was restored" in text_of(driver, "#draft-restored-text")
        assert line_of(driver, "auto_approve_limit") == LIMIT_LINE.format(800)
        assert driver.find_element(By.ID, "note").get_attribute("value") == "pay more at once"
        browser.wait_for(driver, lambda d: "No problems" in text_of(d, "#check-status"))
        browser.screenshot(driver, shots, "editor-draft-restored")

        # Proposed: the kept draft is gone.
        driver.find_element(By.ID, "propose-button").click()
        browser.wait_for(driver, lambda d: "/versions/" in d.current_url)
        assert driver.execute_script(
            f"return localStorage.getItem('rules-service.draft.{RULESET}');") is None
        assert browser.policy_violations(driver) == []
