"""Driving Debian's headless Chromium with Selenium: nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("RULES_SERVICE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RULES_SERVICE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def available() -> bool:
    """Chromium and its driver are installed (``apt-get install chromium chromium-driver``)."""
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium(width: int = 1100, height: int = 900, *, phone: bool = False) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, closed (and the profile removed) after;
    ``phone`` emulates a phone's screen of ``width`` CSS pixels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    profile = tempfile.mkdtemp(prefix="rules-service-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    # The console is kept, so a test can see what the page's security policy refused.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 1}})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def policy_violations(driver: Any) -> list[str]:
    """Console messages since the last call saying the Content-Security-Policy refused
    something (a script, a style, an image)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]]


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 60) -> Any:
    """What ``condition`` returns once it is truthy (Selenium's explicit wait). On a timeout
    the error names the page the browser was on and the start of its text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException as exc:
        raise TimeoutException(f"waited {timeout:g} s; the browser is on {where(driver)}"
                               ) from exc


def where(driver: Any) -> str:
    """The current address, what the page's live regions (role status or alert) say, and
    the first 400 characters of its visible text."""
    from selenium.webdriver.common.by import By

    try:
        said = [" ".join(e.text.split()) for e in driver.find_elements(
            By.CSS_SELECTOR, "[role=status], [role=alert]")]
        text = " ".join(driver.find_element(By.TAG_NAME, "body").text.split())
        return f"{driver.current_url}, its live regions saying {said!r}, reading: {text[:400]!r}"
    except Exception as exc:  # the page itself may be gone; say so rather than hide it
        return f"a page that could not be read ({type(exc).__name__})"


def screenshot(driver: Any, directory: Path, name: str) -> None:
    """The whole page as ``directory/name.png`` (the window grown to the page's height)."""
    directory.mkdir(parents=True, exist_ok=True)
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, 600)  # measure the page, not the last page's window
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 120, 600), 2400))
    driver.save_screenshot(str(directory / f"{name}.png"))
