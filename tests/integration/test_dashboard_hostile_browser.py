"""The dashboard against a hostile client, in headless Chromium (tests/browser.py) on real
`taskflow api` and `taskflow worker` processes: markup planted in everything a task carries is
shown as text and never runs, the content security policy is enforced, and a form another site
submits changes nothing (docs/security.md, "Dashboard")."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import wait_until
from tests.integration.conftest import Stack
from tests.integration.test_dashboard_browser import browser, stack, submit

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["browser", "stack"]  # the fixtures (a stack and a browser of this module's own)

#: Each would set window.__pwned if the page let it run: as an element, an attribute handler,
#: by closing the element it is shown in, or by leaving the attribute it is written into.
PLANTS = (
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=window.__pwned=1>",
    "</pre></textarea><svg onload=window.__pwned=1>",
    "'><script>window.__pwned=1</script>",
)
HOSTILE = " ".join(PLANTS)


def policy_refusals(browser: WebDriver) -> list[str]:
    """What the browser refused under the page's policy since the last call (it logs each)."""
    return [e["message"] for e in browser.get_log("browser") if "Security Policy" in e["message"]]


def assert_inert(browser: WebDriver, url: str, *, refreshed: bool) -> str:
    """Open ``url``; nothing planted ran (after a live refresh too, when the page has one),
    the policy blocks an inline script, and the page's text is returned."""
    browser.get(url)
    if refreshed:  # the refresh writes each live region again through innerHTML
        wait_until(
            browser,
            lambda b: b.execute_script("return document.documentElement.dataset.refreshed"),
            "a live refresh",
        )
    assert browser.execute_script("return window.__pwned") is None, url
    # The page itself breaks no rule of the policy (a blocked file would be logged here).
    refused = policy_refusals(browser)
    assert not refused, refused
    # Even markup that slipped through would not run: the policy refuses inline scripts.
    browser.execute_script(
        "var s = document.createElement('script');"
        "s.textContent = 'window.__inline = 1';"
        "document.body.appendChild(s);"
    )
    assert browser.execute_script("return window.__inline") is None, url
    blocked = policy_refusals(browser)
    assert len(blocked) == 1, blocked  # the injected script, refused by the policy
    policy = httpx.get(url, timeout=30).headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    return str(browser.find_element(By.TAG_NAME, "main").text)


def test_markup_in_a_payload_metadata_error_traceback_and_result_stays_text(
    stack: Stack, browser: WebDriver
) -> None:
    failing = {"fail_attempts": 9, "message": HOSTILE}
    failed = submit(
        stack,
        {"type": "debug.fail", "payload": failing, "max_retries": 0, "metadata": {"n": HOSTILE}},
    )
    echoed = submit(stack, {"type": "debug.echo", "payload": {"html": HOSTILE}})
    stack.wait_status([failed, echoed])
    assert stack.task(failed)["status"] == "FAILED"

    base = f"{stack.base_url}/dashboard"
    text = assert_inert(browser, f"{base}/tasks/{failed}", refreshed=True)
    traceback = browser.find_element(By.CSS_SELECTOR, "pre.traceback").text
    editor = browser.find_element(By.ID, "edit-payload").get_attribute("value") or ""
    for plant in PLANTS:
        # Shown literally: in the error, the traceback, the payload, its editor, the metadata.
        assert text.count(plant) >= 4, plant
        assert plant in traceback
        assert plant in editor
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img, main svg:not(.chart)")

    text = assert_inert(browser, f"{base}/tasks/{echoed}", refreshed=True)
    assert all(text.count(plant) >= 2 for plant in PLANTS)  # the result and the payload

    # What the dashboard reflects from the address: the list's filters and a fault page.
    breaker = '"><img src=x onerror=window.__pwned=1>'  # leaves a double-quoted attribute
    assert_inert(browser, f"{base}/tasks?metadata={quote('n=' + breaker)}", refreshed=True)
    assert browser.find_element(By.NAME, "metadata").get_attribute("value") == "n=" + breaker
    text = assert_inert(browser, f"{base}/tasks/{quote(PLANTS[1])}", refreshed=False)
    assert f"got {PLANTS[1]!r}" in text
    for page in ("/", "/tasks", "/queues", "/workers", "/schedules"):  # the rest, refreshed
        assert_inert(browser, f"{base}{page}", refreshed=True)
    unequal = "<script>window.__pwned++</script>"  # no "=": the fault quotes it back
    text = assert_inert(browser, f"{base}/tasks?metadata={quote(unequal)}", refreshed=False)
    assert f"metadata must be KEY=VALUE, got {unequal!r}" in text


class _Forger(BaseHTTPRequestHandler):
    """Another site: ``/frame`` shows the dashboard in a frame (clickjacking), ``/post`` submits
    a form to the dashboard's cancel action at once (a forged request)."""

    task_url = ""

    def do_GET(self) -> None:
        if self.path == "/frame":
            page = f"<iframe id='victim' src='{self.task_url}' width=800 height=600></iframe>"
        else:
            page = (
                f"<form method='post' action='{self.task_url}/cancel'>"
                "<input name='csrf_token' value='guessed'></form>"
                "<script>document.forms[0].submit()</script>"
            )
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def forger(stack: Stack) -> Iterator[tuple[str, str]]:
    """Another site's address, and the waiting task it targets."""
    queue = f"q{uuid.uuid4().hex[:8]}"  # no worker consumes it: the task stays PENDING
    task_id = submit(stack, {"type": "debug.echo", "payload": {}, "queue": queue})
    target = {"task_url": f"{stack.base_url}/dashboard/tasks/{task_id}"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Forger", (_Forger,), target))
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", task_id
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_can_neither_frame_the_dashboard_nor_submit_its_forms(
    stack: Stack, browser: WebDriver, forger: tuple[str, str]
) -> None:
    site, task_id = forger
    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")  # the browser holds a token
    assert browser.find_elements(By.XPATH, "//button[text()='Cancel']")

    browser.get(f"{site}/frame")
    frame = wait_until(browser, lambda b: b.find_element(By.ID, "victim"), "the frame")
    wait_until(
        browser,
        lambda b: b.execute_script("return document.readyState") == "complete",
        "the framing page to load",
    )
    browser.switch_to.frame(frame)
    try:  # the browser refused to show the page in the frame: no button to trick anyone into
        assert not browser.find_elements(By.XPATH, "//button[text()='Cancel']")
    finally:
        browser.switch_to.default_content()

    browser.get(f"{site}/post")
    wait_until(browser, lambda b: b.current_url.endswith("/cancel"), "the forged POST")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    assert stack.task(task_id)["status"] == "PENDING"


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure(stack: Stack) -> None:
    """uvicorn takes ``X-Forwarded-Proto`` from a proxy it trusts (by default one on this
    host): the page is then served over TLS as far as the browser knows."""
    proxied = httpx.get(
        f"{stack.base_url}/dashboard/", headers={"X-Forwarded-Proto": "https"}, timeout=30
    )
    assert proxied.headers["set-cookie"].startswith("__Host-taskflow-csrf=")
    assert "secure" in proxied.headers["set-cookie"].lower()
    direct = httpx.get(f"{stack.base_url}/dashboard/", timeout=30)
    assert direct.headers["set-cookie"].startswith("taskflow-csrf=")
    assert "secure" not in direct.headers["set-cookie"].lower()
