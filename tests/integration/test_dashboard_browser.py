"""The dashboard end to end: headless Chromium (tests/browser.py) on real `taskflow api` and
`taskflow worker` processes, PostgreSQL and Redis. Each test clicks what a person would and
waits, with generous bounds, for the page to show the outcome; nothing sleeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import chromium, wait_until
from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(module_stack_factory: StackFactory) -> Stack:
    running = module_stack_factory()
    worker = running.start_worker()
    running.start_api()
    wait_for(lambda: "worker started" in worker.output(), timeout=60, what="the worker to start")
    return running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium"), fast_timers=True) as driver:
        yield driver


def badge(browser: WebDriver) -> str:
    """The task page's status badge, read again if the live refresh swapped it meanwhile."""
    return wait_until(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, "#live-task .state .badge").text,
        "the status badge",
    )


def count_of(browser: WebDriver, status: str) -> int:
    card = browser.find_element(By.CSS_SELECTOR, f".card.s-{status.lower()} .n")
    return int(card.text)


def listed_ids(browser: WebDriver) -> set[str]:
    return {a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.tasks a.mono")}


def submit(stack: Stack, body: dict[str, Any]) -> str:
    return str(stack.submit(body)["id"])


def test_the_overview_loads_and_refreshes_itself(stack: Stack, browser: WebDriver) -> None:
    browser.get(f"{stack.base_url}/dashboard/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    live = browser.find_element(By.ID, "live-toggle")
    assert live.get_attribute("aria-pressed") == "true"
    before = count_of(browser, "SUCCESS")

    done = submit(stack, {"type": "debug.echo", "payload": {"n": 1}})
    stack.wait_status([done])

    # No reload: the script fetches the page again and swaps the live regions.
    wait_until(browser, lambda b: count_of(b, "SUCCESS") > before, "the SUCCESS count to grow")
    wait_until(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "svg.chart rect.succeeded"),
        "a bar in the throughput chart",
    )

    # The refresh can be switched off from the keyboard, and on again.
    live.send_keys(Keys.ENTER)
    assert (live.get_attribute("aria-pressed"), live.text) == ("false", "Live refresh: off")
    live.send_keys(Keys.ENTER)
    assert (live.get_attribute("aria-pressed"), live.text) == ("true", "Live refresh: on")


def test_the_list_filters_by_status_and_queue(stack: Stack, browser: WebDriver) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    # No worker consumes this queue: its tasks stay PENDING until cancelled.
    done = submit(stack, {"type": "debug.echo", "payload": {}, "queue": queue})
    waiting = submit(stack, {"type": "debug.echo", "payload": {}, "queue": queue})
    other = submit(stack, {"type": "debug.echo", "payload": {}})
    assert httpx.post(f"{stack.base_url}/api/tasks/{done}/cancel").status_code == 200
    browser.get(f"{stack.base_url}/dashboard/tasks")
    assert {done, waiting, other} <= listed_ids(browser)

    browser.find_element(By.NAME, "queue").send_keys(queue)
    browser.find_element(By.CSS_SELECTOR, "input[name=status][value=PENDING]").click()
    browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()

    wait_until(browser, lambda b: f"queue={queue}" in b.current_url, "the filtered page")
    assert listed_ids(browser) == {waiting}
    assert done not in browser.page_source
    # The form shows the filter it applied.
    assert browser.find_element(By.NAME, "queue").get_attribute("value") == queue
    assert browser.find_element(By.CSS_SELECTOR, "input[name=status][value=PENDING]").is_selected()


def test_a_failed_task_is_opened_retried_and_succeeds(stack: Stack, browser: WebDriver) -> None:
    failing = {"fail_attempts": 1, "message": "the printer is on fire"}
    task_id = submit(stack, {"type": "debug.fail", "payload": failing, "max_retries": 0})
    assert stack.wait_status([task_id])[0]["status"] == "FAILED"

    browser.get(f"{stack.base_url}/dashboard/tasks?status=FAILED")
    browser.find_element(By.LINK_TEXT, task_id).click()

    wait_until(browser, lambda b: b.current_url.endswith(task_id), "the task page")
    assert badge(browser) == "FAILED"
    assert "the printer is on fire" in browser.find_element(By.ID, "live-task").text
    assert browser.find_elements(By.CSS_SELECTOR, "pre.traceback")
    browser.find_element(By.XPATH, "//button[text()='Retry']").click()

    wait_until(browser, lambda b: "notice=retried" in b.current_url, "the retry's redirect")
    wait_until(browser, lambda b: badge(b) == "SUCCESS", "the retried task to succeed")
    timeline = browser.find_element(By.ID, "live-timeline").text
    assert "Attempt 1" in timeline
    assert "Attempt 2" in timeline
    assert "Retry by dashboard" in timeline


def test_a_failed_task_is_retried_with_an_edited_payload(stack: Stack, browser: WebDriver) -> None:
    task_id = submit(
        stack, {"type": "debug.fail", "payload": {"fail_attempts": 99}, "max_retries": 0}
    )
    assert stack.wait_status([task_id])[0]["status"] == "FAILED"
    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")

    browser.find_element(By.CSS_SELECTOR, "details.edit summary").click()
    editor = browser.find_element(By.ID, "edit-payload")
    editor.clear()
    editor.send_keys('{"fail_attempts": 0}')
    browser.find_element(By.XPATH, "//button[text()='Retry with this payload']").click()

    wait_until(browser, lambda b: "notice=retried" in b.current_url, "the retry's redirect")
    wait_until(browser, lambda b: badge(b) == "SUCCESS", "the edited task to succeed")
    assert '"fail_attempts": 0' in browser.find_element(By.ID, "payload").text
    assert stack.task(task_id)["payload"] == {"fail_attempts": 0}


def test_a_running_task_is_cancelled_from_its_page(stack: Stack, browser: WebDriver) -> None:
    task_id = submit(stack, {"type": "debug.sleep", "payload": {"seconds": 120}})
    stack.wait_status([task_id], {"PROCESSING"})
    browser.get(f"{stack.base_url}/dashboard/tasks/{task_id}")
    assert badge(browser) == "PROCESSING"

    browser.find_element(By.XPATH, "//button[text()='Cancel']").click()

    wait_until(browser, lambda b: "notice=cancel" in b.current_url, "the cancel's redirect")
    wait_until(browser, lambda b: badge(b) == "CANCELLED", "the worker to stop the task")
    assert stack.task(task_id)["status"] == "CANCELLED"


def test_the_keyboard_opens_a_task_by_its_id(stack: Stack, browser: WebDriver) -> None:
    task_id = submit(stack, {"type": "debug.echo", "payload": {"k": "v"}})
    browser.get(f"{stack.base_url}/dashboard/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link first
    active = browser.switch_to.active_element
    assert active.text == "Skip to content"
    field = browser.find_element(By.ID, "lookup-id")
    while browser.switch_to.active_element != field:
        browser.switch_to.active_element.send_keys(Keys.TAB)
    field.send_keys(task_id, Keys.ENTER)

    wait_until(browser, lambda b: b.current_url.endswith(task_id), "the task page")
    assert '"k": "v"' in browser.find_element(By.ID, "payload").text


def test_a_phone_sized_window_needs_no_sideways_scrolling(stack: Stack, tmp_path: Path) -> None:
    task_id = submit(stack, {"type": "debug.echo", "payload": {"long": "x" * 300}})
    stack.wait_status([task_id])
    with chromium(tmp_path / "phone", width=390, height=844, fast_timers=True) as phone:
        for path in ("/dashboard/", "/dashboard/tasks", f"/dashboard/tasks/{task_id}"):
            phone.get(f"{stack.base_url}{path}")
            wide = phone.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 0, path


def test_a_queue_is_paused_and_resumed(stack: Stack, browser: WebDriver) -> None:
    browser.get(f"{stack.base_url}/dashboard/queues")
    browser.find_element(By.XPATH, "//button[text()='Pause default']").click()

    wait_until(browser, lambda b: "notice=queue_paused" in b.current_url, "the pause")
    [row] = [
        q
        for q in httpx.get(f"{stack.base_url}/api/queues").json()["queues"]
        if q["name"] == "default"
    ]
    assert row["paused"] is True
    held = submit(stack, {"type": "debug.echo", "payload": {}})
    wait_until(
        browser,
        lambda b: "paused" in b.find_element(By.ID, "queue-default").text,
        "the queue row to say paused",
    )
    assert stack.task(held)["status"] == "PENDING"
    browser.get(f"{stack.base_url}/dashboard/")
    assert "Oldest waiting task:" in browser.find_element(By.ID, "live-queues").text
    browser.get(f"{stack.base_url}/dashboard/queues")

    browser.find_element(By.XPATH, "//button[text()='Resume default']").click()

    wait_until(browser, lambda b: "notice=queue_resumed" in b.current_url, "the resume")
    assert stack.wait_status([held])[0]["status"] == "SUCCESS"
