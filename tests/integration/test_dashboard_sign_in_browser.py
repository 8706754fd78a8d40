"""Signing in to the dashboard in headless Chromium (tests/browser.py) on a real `taskflow api`
closed by keys made with `taskflow keys create` (decision 35): the form, the session cookie as
the browser keeps it, an admin's action, a read-only session, and signing out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import chromium, wait_until
from tests.integration.conftest import Stack, StackFactory
from tests.integration.test_auth import _create_key
from tests.integration.test_dashboard_hostile_browser import policy_refusals

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium"), fast_timers=True) as driver:
        yield driver


def _pending_task(stack: Stack, key: str) -> str:
    # No worker runs: the task stays PENDING until cancelled.
    body = {"type": "debug.echo", "payload": {}, "queue": f"q{uuid.uuid4().hex[:8]}"}
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(f"{stack.base_url}/api/tasks", json=body, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _sign_in(browser: WebDriver, key: str) -> None:
    wait_until(browser, lambda b: "/dashboard/sign-in" in b.current_url, "the sign-in form")
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, ".sign-in button[type=submit]").click()
    wait_until(browser, lambda b: "/dashboard/sign-in" not in b.current_url, "the signed-in page")


def _badge(browser: WebDriver) -> str:
    return wait_until(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, "#live-task .state .badge").text,
        "the status badge",
    )


def test_an_admin_signs_in_cancels_a_task_and_signs_out(
    stack_factory: StackFactory, browser: WebDriver
) -> None:
    stack = stack_factory()
    _, admin = _create_key(stack.env, "admin")
    stack.start_api()
    task_id = _pending_task(stack, admin)

    browser.get(f"{stack.base_url}/dashboard/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
    assert policy_refusals(browser) == []  # the form and its style break no policy
    browser.find_element(By.ID, "api-key").send_keys("tf_wrong")
    browser.find_element(By.CSS_SELECTOR, ".sign-in button[type=submit]").click()
    wait_until(
        browser,
        lambda b: "wrong or revoked" in b.find_element(By.CSS_SELECTOR, ".problem").text,
        "the refusal",
    )
    _sign_in(browser, admin)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    [session] = [c for c in browser.get_cookies() if c["name"] == "taskflow-session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert admin not in session["value"]

    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")
    assert _badge(browser) == "PENDING"
    browser.find_element(By.XPATH, "//button[text()='Cancel']").click()
    wait_until(browser, lambda b: "notice=cancelled" in b.current_url, "the cancel's redirect")
    wait_until(browser, lambda b: _badge(b) == "CANCELLED", "the task to be cancelled")

    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait_until(browser, lambda b: b.current_url.endswith("/dashboard/sign-in"), "the sign-in")
    assert not [c for c in browser.get_cookies() if c["name"] == "taskflow-session"]
    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")
    wait_until(browser, lambda b: "/dashboard/sign-in?next=" in b.current_url, "the form again")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"


def test_a_read_only_session_sees_a_task_without_its_actions(
    stack_factory: StackFactory, browser: WebDriver
) -> None:
    stack = stack_factory()
    _, admin = _create_key(stack.env, "admin")
    _, reader = _create_key(stack.env, "read")
    stack.start_api()
    task_id = _pending_task(stack, admin)

    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")
    _sign_in(browser, reader)
    wait_until(browser, lambda b: b.current_url.endswith(task_id), "the task asked for")
    assert _badge(browser) == "PENDING"
    assert not browser.find_elements(By.XPATH, "//button[text()='Cancel']")
    assert browser.find_elements(By.XPATH, "//button[text()='Sign out']")
