"""How late tasks start after their run_at, through a real API and an idle worker.

A measurement, not a test: skipped unless asked for, and it prints its figures.

    TASKFLOW_MEASURE_LATENESS=1 .venv/bin/pytest -p no:cacheprovider -s \\
        tests/integration/test_due_lateness_by_hand.py

Delayed: 200 submissions, a few every 50 ms, each due 0.3 to 0.8 s ahead, so that many are due
sooner than one submitted before them. Retried: tasks whose first attempt fails, each retry due
after the stack's backoff (0.1 s base). Lateness is ``started_at - run_at`` as the store has
them (for a retried task, the second attempt's start and the retry's run_at).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import StackFactory

pytestmark = pytest.mark.skipif(
    not os.environ.get("TASKFLOW_MEASURE_LATENESS"), reason="a measurement, run by hand"
)


def lateness_ms(task: dict[str, Any]) -> float:
    started = datetime.fromisoformat(task["started_at"])
    return (started - datetime.fromisoformat(task["run_at"])).total_seconds() * 1000


def figures(what: str, late: list[float]) -> str:
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{what}: {len(late)} tasks, started after run_at p50 {statistics.median(late):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms, min {ordered[0]:.1f} ms"
    )


def test_measure_how_late_delayed_and_retried_tasks_start(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api()
    stack.start_worker()
    warm_up = stack.submit({"type": "debug.echo", "payload": {}})["id"]
    stack.wait_status([warm_up], {"SUCCESS"})  # the worker is up, and idle from now on
    rand = random.Random(10)
    delayed = []
    for _ in range(200):
        run_at = datetime.now(UTC) + timedelta(seconds=rand.uniform(0.3, 0.8))
        body = {"type": "debug.echo", "payload": {}, "run_at": run_at.isoformat()}
        delayed.append(stack.submit(body)["id"])
        time.sleep(rand.uniform(0.0, 0.1))
    retried = []
    for _ in range(50):
        body = {"type": "debug.fail", "payload": {"fail_attempts": 1}, "max_retries": 1}
        retried.append(stack.submit(body)["id"])
        time.sleep(rand.uniform(0.2, 0.4))  # one at a time, so the worker is idle meanwhile

    done = stack.wait_status([*delayed, *retried], {"SUCCESS"}, timeout=120)
    print()
    print(figures("delayed", [lateness_ms(t) for t in done[: len(delayed)]]))
    print(figures("retried", [lateness_ms(t) for t in done[len(delayed) :]]))
