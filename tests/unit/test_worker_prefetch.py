"""Tasks claimed ahead of free slots: at most `concurrency` handlers still run at once, and a
prefetched task is held like a running one (its lease renewed, its cancel acknowledged without
running it, handed back uncounted at shutdown, dropped when its lease is lost)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from taskflow.domain.model import Task, TaskStatus
from taskflow.entrypoints.prefetch import Prefetch
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.entrypoints.worker import log as worker_log
from taskflow.handlers import TaskContext
from tests.unit.test_worker import (
    BOUND,
    LEASE_SECONDS,
    Env,
    facts,
    heard,
    serving,
    until,
)

PENDING, PROCESSING, SUCCESS, CANCELLED = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCESS,
    TaskStatus.CANCELLED,
)


class Ahead(Prefetch):
    """Room for its whole cap at once, whatever the throughput."""

    def room(self) -> int:
        return self.cap - len(self)


@pytest.fixture
def env() -> Env:
    return Env()


async def one_running_one_prefetched(env: Env) -> tuple[Task, Task, Worker]:
    """A worker of one slot running a blocked handler, with one task claimed ahead."""
    blocker = await env.submit("t.block")
    env.clock.advance(1)  # queued after the blocker, which takes the one slot
    waiting = await env.submit("t.order", {"order_id": "o-1", "qty": 1})
    w = worker(env, concurrency=1, ahead=1)
    assert await w.run_once() == 2
    await until(env.probe.started)
    assert [t.id for t in w.prefetched] == [waiting.id]
    return blocker, waiting, w


def worker(env: Env, *, concurrency: int, ahead: int) -> Worker:
    options = WorkerOptions(
        concurrency=concurrency, heartbeat_seconds=3600.0, sweep_seconds=3600.0, poll_seconds=0.05
    )
    return Worker(env.execution(), env.registry, options, prefetch=Ahead(ahead))


async def test_claims_ahead_but_runs_no_more_than_concurrency_at_once(env: Env) -> None:
    running = peak = 0

    @env.registry.task("t.count")
    async def count(payload: dict[str, Any], ctx: TaskContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1

    submitted = [await env.submit("t.count") for _ in range(40)]
    w = worker(env, concurrency=3, ahead=10)
    assert await w.run_once() == 13
    assert len(w.prefetched) == 10
    async with asyncio.timeout(BOUND):
        while {(await env.get(t)).status for t in submitted} != {SUCCESS}:
            await w.run_once()
            await asyncio.sleep(0)
        await w.wait_idle()
    assert [(await env.get(t)).status for t in submitted] == [SUCCESS] * 40
    assert peak == 3


async def test_a_prefetched_task_whose_cancel_is_requested_ends_cancelled_unrun(env: Env) -> None:
    blocker, waiting, w = await one_running_one_prefetched(env)

    await env.tasks.cancel(waiting.id)
    w.cancel(waiting.id)
    env.probe.release.set()
    async with asyncio.timeout(BOUND):
        await w.wait_idle()

    done = await env.get(waiting)
    assert (done.status, done.attempts) == (CANCELLED, 1)
    assert env.probe.payloads == []  # its handler never ran
    assert (await env.get(blocker)).status is SUCCESS


async def test_shutdown_hands_prefetched_tasks_back_uncounted(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = await env.submit("t.block")
    env.clock.advance(1)
    waiting = [await env.submit("t.order", {"order_id": "o", "qty": 1}) for _ in range(2)]
    w = worker(env, concurrency=1, ahead=2)
    assert await w.run_once() == 3
    await until(env.probe.started)
    assert len(w.prefetched) == 2
    caplog.set_level(logging.INFO, logger=worker_log.name)
    with heard("finishing running tasks") as shutting_down:
        async with serving(w) as stop:
            stop.set()
            await until(shutting_down)
            env.probe.release.set()  # the running handler finishes; the prefetched never start

    for task in waiting:
        released = await env.get(task)
        assert facts(released) == (PENDING, 1, 0, None)  # handed back: no retry counted
        assert released.lease is None
    assert env.probe.payloads == []
    assert (await env.get(blocker)).status is SUCCESS


async def test_prefetched_leases_are_renewed_and_a_lost_one_is_dropped(env: Env) -> None:
    blocker, waiting, w = await one_running_one_prefetched(env)

    env.clock.advance(LEASE_SECONDS - 1)
    await w.heartbeat()  # renews the prefetched task's lease with the running one's
    env.clock.advance(2)
    assert await env.execution("b").reap() == []

    env.clock.advance(LEASE_SECONDS + 1)  # no renewal since: say the worker froze
    reaped = [lost.task for lost in await env.execution("b").reap()]
    assert {t.id for t in reaped} == {blocker.id, waiting.id}
    await w.heartbeat()
    assert w.prefetched == []
    async with asyncio.timeout(BOUND):
        await w.wait_idle()
    assert await env.get(waiting) == next(t for t in reaped if t.id == waiting.id)
    assert env.probe.payloads == []
