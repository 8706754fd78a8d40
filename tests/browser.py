"""Headless Chromium from Debian's ``chromium`` package, driven by Selenium through Debian's
``chromium-driver``: nothing is downloaded. ``make`` installs both when they are missing; a
test that finds them missing fails, naming them (it never skips)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# What lets Chromium run headless as root in a container, and keeps it off the network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: How long a page may take to show what a test waits for: generous, as the machine is shared.
PATIENCE = 60.0
#: The longest timer period a test's page gets: the dashboard's live refresh (every 3 s) comes
#: round ten times as often, so that a test waiting for it waits a fraction of a second.
FAST_TIMER_MS = 300
# Run by the browser before any script of each page (it is no script of the page's: the
# page's content security policy does not apply to it).
_FAST_TIMERS = f"""
(function () {{
  var setInterval = window.setInterval;
  window.setInterval = function (handler, period) {{
    var rest = Array.prototype.slice.call(arguments, 2);
    var shorter = Math.min(period || 0, {FAST_TIMER_MS});
    return setInterval.apply(window, [handler, shorter].concat(rest));
  }};
}})();
"""
T = TypeVar("T")


@contextlib.contextmanager
def chromium(
    profile: Path, *, width: int = 1280, height: int = 800, fast_timers: bool = False
) -> Iterator[WebDriver]:
    """Headless Chromium; ``fast_timers``: no page's ``setInterval`` period is longer than
    ``FAST_TIMER_MS``."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise AssertionError(
            f"{' and '.join(missing)} missing: `make` installs Debian's chromium and "
            "chromium-driver (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        if fast_timers:
            driver.execute_cdp_cmd(
                "Page.addScriptToEvaluateOnNewDocument", {"source": _FAST_TIMERS}
            )
        yield driver
    finally:
        driver.quit()


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Poll ``condition`` until it is truthy; fail after ``PATIENCE`` seconds naming ``what``.

    An element the live refresh replaced between being found and being read is stale: that
    poll counts as "not yet", as a missing element does, instead of ending the wait.
    """
    waiting = WebDriverWait(
        driver,
        PATIENCE,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        return waiting.until(condition)
    except Exception as exc:
        raise AssertionError(
            f"timed out waiting for {what} on {driver.current_url}:\n{driver.page_source[-3000:]}"
        ) from exc
