"""Cancelling a running task: the worker stops its handler and records the attempt CANCELLED.

On the in-memory store, queue and cancel notices; the worker learns of a cancel from a lease
renewal (`heartbeat`) or from a notice, whichever comes first.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from taskflow.adapters.memory import InMemoryCancelNotices
from taskflow.domain.attempts import AttemptOutcome
from taskflow.domain.errors import InvalidTransition, QueueUnavailable
from taskflow.domain.model import Task, TaskStatus
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.handlers import TaskContext
from taskflow.registry import Registry
from tests.unit.test_worker import (
    BOUND,
    ORDER,
    Env,
    assert_released,
    run_one,
    serving,
    until,
)

CANCELLED, SUCCESS = TaskStatus.CANCELLED, TaskStatus.SUCCESS


@dataclass
class Threaded:
    """What the plain `def` handler, and the one that swallows its cancellation, saw."""

    started: threading.Event = field(default_factory=threading.Event)
    saw_cancelled: list[bool] = field(default_factory=list)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)  # the stubborn handler waits
    swallowed: list[bool] = field(default_factory=list)


def threaded_registry(seen: Threaded) -> Registry:
    tasks = Registry()

    @tasks.task("t.poll")
    def poll(payload: dict[str, Any], ctx: TaskContext) -> str:
        seen.saw_cancelled.append(ctx.cancelled)
        seen.started.set()
        stopped = threading.Event()
        # Polls as a long-running `def` handler would; BOUND keeps a broken worker from
        # leaving the thread behind for ever.
        for _ in range(int(BOUND / 0.005)):
            if ctx.cancelled:
                seen.saw_cancelled.append(True)
                return "stopped early"
            stopped.wait(0.005)
        return "ran to the end"

    @tasks.task("t.stubborn")
    async def stubborn(payload: dict[str, Any], ctx: TaskContext) -> str:
        seen.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.swallowed.append(ctx.cancelled)
            return "ignored the cancellation"
        return "never"

    return tasks


class CancelEnv(Env):
    def __init__(self) -> None:
        super().__init__()
        self.notices = InMemoryCancelNotices()
        self.threaded = Threaded()
        self.registry.include(threaded_registry(self.threaded))
        self.tasks = self.task_service(self.notices)

    def listening_worker(self) -> Worker:
        """A worker that hears cancel notices, and renews leases only once an hour."""
        options = WorkerOptions(
            heartbeat_seconds=3600.0,
            sweep_seconds=3600.0,
            poll_seconds=0.05,
            shutdown_grace_seconds=0.01,
        )
        return Worker(self.execution(), self.registry, options, cancel_notices=self.notices)

    async def outcomes(self, task: Task) -> list[AttemptOutcome | None]:
        return [attempt.outcome for attempt in await self.repo.attempts(task.id)]


@pytest.fixture
def env() -> CancelEnv:
    return CancelEnv()


async def blocked_handler(env: CancelEnv) -> tuple[Task, Worker]:
    """A worker running the blocking async handler of a task just submitted."""
    task = await env.submit("t.block")
    worker = env.worker()
    assert await worker.run_once() == 1
    await until(env.probe.started)
    return task, worker


async def settled(worker: Worker) -> None:
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()


async def test_a_renewal_finding_a_cancel_cancels_an_async_handler(env: CancelEnv) -> None:
    task, worker = await blocked_handler(env)

    requested = await env.tasks.cancel(task.id)
    assert (requested.status, requested.cancel_requested) == (TaskStatus.PROCESSING, True)
    await worker.heartbeat()
    await settled(worker)

    done = await env.get(task)
    assert (done.status, done.cancel_requested, done.lease) == (CANCELLED, False, None)
    assert done.finished_at == env.clock.now()
    assert env.probe.cancelled == [task.id]
    assert await env.outcomes(task) == [AttemptOutcome.CANCELLED]


async def test_a_def_handler_sees_ctx_cancelled_and_its_attempt_ends_cancelled(
    env: CancelEnv,
) -> None:
    task = await env.submit("t.poll")
    worker = env.worker()
    assert await worker.run_once() == 1
    assert await asyncio.to_thread(env.threaded.started.wait, BOUND)

    await env.tasks.cancel(task.id)
    await worker.heartbeat()
    await settled(worker)

    done = await env.get(task)
    assert (done.status, done.result) == (CANCELLED, None)  # its early return is no success
    assert env.threaded.saw_cancelled == [False, True]
    assert await env.outcomes(task) == [AttemptOutcome.CANCELLED]


async def test_an_async_handler_that_swallows_its_cancellation_still_ends_cancelled(
    env: CancelEnv,
) -> None:
    task = await env.submit("t.stubborn")
    worker = env.worker()
    assert await worker.run_once() == 1
    await until(env.threaded.waiting)

    await env.tasks.cancel(task.id)
    await worker.heartbeat()
    await settled(worker)

    done = await env.get(task)
    assert (done.status, done.result) == (CANCELLED, None)
    assert env.threaded.swallowed == [True]
    assert await env.outcomes(task) == [AttemptOutcome.CANCELLED]


async def test_a_handler_that_finishes_before_the_cancel_reaches_it_keeps_its_outcome(
    env: CancelEnv,
) -> None:
    task, worker = await blocked_handler(env)

    await env.tasks.cancel(task.id)
    env.probe.release.set()  # the handler returns before any renewal or notice
    await settled(worker)
    await worker.heartbeat()  # nothing runs any more: nothing to stop

    done = await env.get(task)
    assert (done.status, done.result, done.cancel_requested) == (SUCCESS, "released", False)
    assert env.probe.cancelled == []
    assert await env.outcomes(task) == [AttemptOutcome.SUCCESS]


async def test_a_cancel_notice_stops_the_handler_without_waiting_for_a_renewal(
    env: CancelEnv,
) -> None:
    task = await env.submit("t.block")

    async with serving(env.listening_worker()):
        await until(env.probe.started)
        await env.tasks.cancel(task.id)  # the next renewal is an hour away
        await until(env.probe.interrupted)

    done = await env.get(task)
    assert done.status is CANCELLED
    assert await env.outcomes(task) == [AttemptOutcome.CANCELLED]


async def test_a_notice_for_a_task_the_worker_does_not_run_changes_nothing(
    env: CancelEnv,
) -> None:
    task, worker = await blocked_handler(env)

    worker.cancel(uuid.uuid4())
    env.probe.release.set()
    await settled(worker)

    assert (await env.get(task)).status is SUCCESS


async def test_shutdown_still_hands_back_an_uncancelled_attempt(env: CancelEnv) -> None:
    task = await env.submit("t.block")

    async with serving(env.listening_worker()):
        await until(env.probe.started)

    assert env.probe.cancelled == [task.id]
    assert_released(await env.get(task))
    assert await env.outcomes(task) == [AttemptOutcome.RELEASED]


async def test_a_cancelled_pending_task_whose_id_is_queued_or_popped_never_runs(
    env: CancelEnv,
) -> None:
    submitted = [await env.submit("t.order", ORDER) for _ in range(2)]
    in_hand = await env.queue.pop(["default"], limit=1, timeout=0)
    # A worker holds one id; the other waits in the queue.
    [popped] = [t for t in submitted if t.id in in_hand]
    [queued] = [t for t in submitted if t.id not in in_hand]

    for task in (popped, queued):
        assert (await env.tasks.cancel(task.id)).status is CANCELLED

    assert await env.repo.claim(in_hand, worker_id="w1", lease_seconds=30) == []
    assert await env.worker().run_once() == 0  # pops the other id, and claims nothing
    assert env.probe.payloads == []
    for task in (popped, queued):
        done = await env.get(task)
        assert (done.status, done.attempts) == (CANCELLED, 0)


async def test_cancelling_a_final_task_is_refused(env: CancelEnv) -> None:
    task = await env.submit("t.order", ORDER)
    await run_one(env.worker())

    with pytest.raises(InvalidTransition):
        await env.tasks.cancel(task.id)
    assert (await env.get(task)).status is SUCCESS


# -- the notices ------------------------------------------------------------------------------


class DownNotices(InMemoryCancelNotices):
    async def notify_cancel(self, task_id: uuid.UUID) -> None:
        raise QueueUnavailable("redis is unreachable")


async def test_only_a_cancel_request_for_a_running_task_is_notified(env: CancelEnv) -> None:
    submitted = [await env.submit("t.block") for _ in range(2)]
    [running] = await env.execution().claim(["default"], limit=1, timeout=0)
    [pending] = [t for t in submitted if t.id != running.id]
    notices = env.notices.cancellations()
    first = asyncio.ensure_future(anext(notices))
    await asyncio.sleep(0)  # the subscription starts with the first wait for a notice

    assert (await env.tasks.cancel(pending.id)).status is CANCELLED
    assert (await env.tasks.cancel(running.id)).cancel_requested

    # Had the PENDING task's cancel been notified, its id would have come first.
    async with asyncio.timeout(BOUND):
        assert await first == running.id
    await notices.aclose()


async def test_a_notice_that_cannot_be_sent_does_not_fail_the_cancel(env: CancelEnv) -> None:
    task = await env.submit("t.block")
    [claimed] = await env.execution().claim(["default"], limit=1, timeout=0)
    service = env.task_service(DownNotices())

    requested = await service.cancel(task.id)

    assert (requested.status, requested.cancel_requested) == (TaskStatus.PROCESSING, True)
    assert (await env.get(task)) == requested
    assert claimed.id == task.id
