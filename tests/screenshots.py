"""``python -m tests.screenshots`` (or ``make screenshots``): the dashboard's main pages as PNG
files in docs/screenshots/, for the README and docs/operations.md.

It runs ``taskflow dev`` (SQLite in a temporary directory, no servers needed), submits sample
tasks through the API (some succeed, some fail, one keeps running), and photographs each page
in headless Chromium (tests/browser.py) at 1280x800, and the overview at a phone's 390x844.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By

from tests.browser import chromium, wait_until
from tests.integration.processes import Process, base_env, free_port, wait_for, wait_http_ok

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
FINAL = {"SUCCESS", "FAILED", "CANCELLED"}


def sample_tasks(client: httpx.Client) -> str:
    """Submit the sample; returns the id of a failed task, once every short task has ended."""

    def submit(body: dict[str, object]) -> str:
        answer = client.post("/api/tasks", json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])

    short = [submit({"type": "debug.echo", "payload": {"n": n}}) for n in range(24)]
    for n in range(4):  # a queue no worker of `taskflow dev` consumes: they wait
        submit({"type": "debug.echo", "payload": {"n": n}, "queue": "reports"})
    message = "the SMTP server said 554: <mailbox unavailable>"
    failed = [
        submit(
            {
                "type": "debug.fail",
                "payload": {"fail_attempts": 9, "message": message},
                "max_retries": 1,
            }
        )
        for _ in range(3)
    ]
    submit({"type": "debug.sleep", "payload": {"seconds": 600}})
    submit({"type": "debug.echo", "payload": {"later": True}, "delay_seconds": 3600})

    def ended() -> bool:
        return all(client.get(f"/api/tasks/{i}").json()["status"] in FINAL for i in short + failed)

    wait_for(ended, timeout=120, interval=0.2, what="the sample tasks to end")

    def reported_running() -> bool:
        workers = client.get("/api/workers").json()["workers"]
        return any(worker["running_count"] for worker in workers)

    wait_for(reported_running, timeout=60, interval=0.2, what="the worker to report its task")
    return failed[0]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = base_env(TASKFLOW_PORT=str(port), TASKFLOW_RETRY_BACKOFF_BASE="0.1")
        dev = Process(["dev"], env, Path(scratch) / "dev.log", cwd=Path(scratch))
        try:
            wait_http_ok(f"{base}/health/live", timeout=60, process=dev)
            with httpx.Client(base_url=base, timeout=30) as client:
                failed = sample_tasks(client)
            pages = {
                "overview": "/dashboard/",
                "tasks": "/dashboard/tasks",
                "task": f"/dashboard/tasks/{failed}",
                "queues": "/dashboard/queues",
                "workers": "/dashboard/workers",
            }
            with chromium(Path(scratch) / "profile") as browser:
                for name, path in pages.items():
                    browser.get(base + path)
                    wait_until(browser, lambda b: b.find_elements(By.TAG_NAME, "h1"), name)
                    browser.save_screenshot(str(OUT / f"{name}.png"))
                    print(f"docs/screenshots/{name}.png")
            with chromium(Path(scratch) / "phone", width=390, height=844) as phone:
                phone.get(base + "/dashboard/")
                phone.save_screenshot(str(OUT / "overview-phone.png"))
                print("docs/screenshots/overview-phone.png")
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
