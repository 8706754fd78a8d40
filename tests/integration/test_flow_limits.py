"""Issue 11, items 2-4: rate, concurrency and per-key limits hold across real worker processes.

Three `taskflow worker` processes share the real PostgreSQL and Redis; each could run far more
at once than the limits allow, so only the limiter keeps them in check. Starts are read from
the store (``started_at``: the claim, right after the admission) and running intervals from a
ledger the handlers write (a handler runs only while its slots are held). The bounds are the
contract's, not the machine's: at most N starts in any window of N/rate seconds plus the burst,
at least as many less the burst while a backlog waits; never more than the slots running,
and on average most of them busy while tasks wait.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import flow_tasks
from tests.integration.conftest import FAULT_SETTINGS, Stack, StackFactory
from tests.integration.flow_tasks import RATE, SLOTS, Entry
from tests.integration.processes import Process, wait_for
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

WINDOW = 5.0  # seconds: "a limit of 10/s over 5 s starts 50 ± burst"
WORKERS = 3
FLOW_SETTINGS = {
    **FAULT_SETTINGS,
    "TASKFLOW_TASKS": "tests.integration.flow_tasks:tasks",
    "TASKFLOW_WORKER_CONCURRENCY": "8",
}


@pytest.fixture(scope="module")
def flow_stack(module_stack_factory: StackFactory) -> Stack:
    stack = module_stack_factory(**FLOW_SETTINGS)
    for _ in range(WORKERS):
        stack.start_worker("--queues", "flow")
    stack.start_api()
    return stack


def submit(stack: Stack, type_: str, payloads: Iterable[dict[str, Any]]) -> list[str]:
    batch = {"tasks": [{"type": type_, "payload": p} for p in payloads]}
    response = httpx.post(f"{stack.base_url}/api/tasks/batch", json=batch, timeout=30)
    assert response.status_code == 202, response.text
    return [task["id"] for task in response.json()["tasks"]]


def intervals(
    entries: Sequence[Entry], killed: dict[int, float] | None = None
) -> list[tuple[float, float, Entry]]:
    """(start, end, start entry) per attempt; an attempt whose process was killed at time t
    (``killed``: pid → t) without an end ran until t at most."""
    ends = {(e.task_id, e.attempt): e.at for e in entries if e.event == "end"}
    found = []
    for entry in (e for e in entries if e.event == "start"):
        end = ends.get((entry.task_id, entry.attempt))
        if end is None:
            end = (killed or {}).get(entry.pid)
            assert end is not None, f"an attempt of a live worker never ended: {entry}"
        found.append((entry.at, end, entry))
    return found


def running(spans: Sequence[tuple[float, float, Any]]) -> list[tuple[float, int]]:
    """(time, how many run from then on), at each change; an end before a start at one time."""
    changes = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    count, steps = 0, []
    for at, delta in changes:
        count += delta
        steps.append((at, count))
    return steps


def most_running(spans: Sequence[tuple[float, float, Any]]) -> int:
    return max((count for _, count in running(spans)), default=0)


def mean_running(spans: Sequence[tuple[float, float, Any]], begin: float, end: float) -> float:
    steps = running(spans)
    total = 0.0
    for (at, count), (after, _) in itertools.pairwise(steps):
        lo, hi = max(at, begin), min(after, end)
        if hi > lo:
            total += count * (hi - lo)
    return total / (end - begin)


def started_at(task: dict[str, Any]) -> float:
    return datetime.fromisoformat(task["started_at"]).timestamp()


def test_a_rate_of_10_per_second_starts_50_plus_or_minus_the_burst_in_any_5_seconds(
    flow_stack: Stack, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ids = submit(flow_stack, "flow.rated", [{"ledger": str(ledger)}] * 120)
    done = flow_stack.wait_status(ids, {"SUCCESS"}, timeout=120)

    assert {task["attempts"] for task in done} == {1}  # throttled is no attempt
    starts = sorted(started_at(task) for task in done)
    burst = RATE
    # (120 - burst) / RATE seconds at the least: the starts beyond the burst are paced.
    assert starts[-1] - starts[0] >= (len(starts) - burst) / RATE - 0.1
    for first in starts:
        in_window = sum(1 for s in starts if first <= s < first + WINDOW)
        assert in_window <= RATE * WINDOW + burst, (first - starts[0], in_window)
        if first + WINDOW <= starts[-1]:  # a backlog waited all through this window
            assert in_window >= RATE * WINDOW - burst, (first - starts[0], in_window)


def test_a_concurrency_of_3_never_runs_more_and_keeps_3_busy(
    flow_stack: Stack, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ids = submit(flow_stack, "flow.limited", [{"ledger": str(ledger), "seconds": 1.0}] * 15)
    flow_stack.wait_status(ids, {"SUCCESS"}, timeout=120)

    spans = intervals(flow_tasks.read(ledger))
    assert len(spans) == len(ids)
    assert most_running(spans) == SLOTS
    # While tasks waited (until the last one started), most of the slots were in use.
    first, last = min(s for s, _, _ in spans), max(s for s, _, _ in spans)
    assert mean_running(spans, first, last) >= SLOTS - 1


def test_a_per_key_limit_holds_each_key_while_the_other_keys_run(
    flow_stack: Stack, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    payloads = [
        {"ledger": str(ledger), "seconds": 0.5, "customer": customer}
        for _ in range(4)
        for customer in ("acme", "globex", "initech")
    ]
    ids = submit(flow_stack, "flow.keyed", payloads)
    flow_stack.wait_status(ids, {"SUCCESS"}, timeout=120)

    spans = intervals(flow_tasks.read(ledger))
    assert len(spans) == len(ids)
    for customer in ("acme", "globex", "initech"):
        assert most_running([s for s in spans if s[2].customer == customer]) == 1, customer
    assert most_running(spans) >= 2  # one customer's backlog held back nobody else's


def test_a_throttled_type_does_not_hold_back_unlimited_work_and_outlives_its_lease(
    flow_stack: Stack, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    # Longer than the lease: their slots hold only as long as the lease keeper renews them.
    seconds = 1.5 * float(FLOW_SETTINGS["TASKFLOW_LEASE_SECONDS"])
    slow = submit(flow_stack, "flow.limited", [{"ledger": str(ledger), "seconds": seconds}] * 6)
    wait_for(
        lambda: sum(e.event == "start" for e in flow_tasks.read(ledger)) >= SLOTS,
        timeout=60,
        what="the limited tasks to fill their slots",
    )
    free = submit(flow_stack, "flow.free", [{"ledger": str(ledger)}] * 20)
    flow_stack.wait_status(free, {"SUCCESS"}, timeout=60)
    # All the unlimited tasks ran while the limited backlog still waited for its slots.
    started = [e for e in flow_tasks.read(ledger) if e.event == "start" and e.task_id in slow]
    assert len(started) < len(slow)
    flow_stack.wait_status(slow, {"SUCCESS"}, timeout=120)
    spans = [span for span in intervals(flow_tasks.read(ledger)) if span[2].task_id in slow]
    assert most_running(spans) == SLOTS


def test_a_worker_killed_with_its_slots_gives_them_back_at_lease_expiry_never_twice(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = stack_factory(**FLOW_SETTINGS)
    workers = [stack.start_worker("--queues", "flow") for _ in range(WORKERS)]
    stack.start_api()
    ledger = tmp_path / "ledger"
    ids = submit(stack, "flow.limited", [{"ledger": str(ledger), "seconds": 1.5}] * 18)

    def a_busy_worker() -> Process | None:
        entries = flow_tasks.read(ledger)
        ended = {(e.task_id, e.attempt) for e in entries if e.event == "end"}
        busy = {
            e.pid for e in entries if e.event == "start" and (e.task_id, e.attempt) not in ended
        }
        return next((w for w in workers if w.pid in busy), None)

    victim = wait_for(a_busy_worker, timeout=60, what="a worker running a limited task")
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)
    killed_at = time.time()

    done = stack.wait_status(ids, {"SUCCESS"}, timeout=180)

    spans = intervals(flow_tasks.read(ledger), {victim.pid: killed_at})
    # Never more than the slots, counting the killed worker's attempts as running until it
    # died (their slots were held longer: until their lease lapsed).
    assert most_running(spans) == SLOTS
    assert any(task["attempts"] == 2 for task in done)  # the killed attempts ran again
    # The dead worker's slots came back: after its lease, the three slots were full again.
    lease = float(FLOW_SETTINGS["TASKFLOW_LEASE_SECONDS"])
    back_at = killed_at + lease
    later = [(max(start, back_at), end, e) for start, end, e in spans if end > back_at]
    assert most_running(later) == SLOTS


def test_a_flushed_redis_gives_the_running_tasks_their_slots_back_before_any_new_start(
    stack_factory: StackFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = stack_factory(**FLOW_SETTINGS, TASKFLOW_REDIS_URL=redis_server.url)
    for _ in range(WORKERS):
        stack.start_worker("--queues", "flow")
    stack.start_api()
    ledger = tmp_path / "ledger"
    ids = submit(stack, "flow.limited", [{"ledger": str(ledger), "seconds": 2.0}] * 9)
    wait_for(
        lambda: sum(e.event == "start" for e in flow_tasks.read(ledger)) >= SLOTS,
        timeout=60,
        what="the limited tasks to fill their slots",
    )
    client = redis_server.client()
    assert client.flushall()  # the queued ids and the slots are gone; the store knows
    client.close()

    done = stack.wait_status(ids, {"SUCCESS"}, timeout=180)

    assert {task["attempts"] for task in done} == {1}
    assert most_running(intervals(flow_tasks.read(ledger))) == SLOTS
