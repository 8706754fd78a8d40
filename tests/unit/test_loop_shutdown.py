"""A worker's background loops end on the shutdown's cancel, whatever a driver makes of it.

A driver interrupted by a cancel may raise an error of its own, or catch the cancel and
return as if nothing happened. A loop that logged the one or carried on after the other
never ended, and a worker stopped right after it started hung until it was killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.domain.errors import StoreUnavailable
from taskflow.entrypoints.sweeper import run_step
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.handlers import TaskContext
from taskflow.registry import Registry
from tests.unit.test_worker import BOUND, Env, assert_released, until

Step = Callable[[], Awaitable[None]]


async def swallows_the_cancel() -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        return


async def turns_the_cancel_into_an_outage() -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        raise StoreUnavailable("connection closed mid-statement") from None


async def cancel_midway(step: Step) -> asyncio.Task[None]:
    job = asyncio.create_task(run_step(step))
    await asyncio.sleep(0)  # the step is waiting now
    job.cancel()
    await asyncio.wait([job], timeout=BOUND)
    return job


@pytest.mark.parametrize("step", [swallows_the_cancel, turns_the_cancel_into_an_outage])
async def test_a_step_interrupted_by_the_cancel_ends_its_loop(step: Step) -> None:
    job = await cancel_midway(step)
    assert job.cancelled()


async def test_an_outage_without_a_cancel_is_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    async def down() -> None:
        raise StoreUnavailable("refused")

    await run_step(down)  # returns: the loop goes on
    assert "down skipped" in caplog.text


async def stops_once_started(worker: Worker, started: asyncio.Event) -> None:
    """Start the worker, tell it to stop once ``started`` is set, and wait for its end.

    Each fake swallows one cancel only: a worker that did not stop on it is cancelled again
    when the test's loop closes, and ends then instead of hanging the run.
    """
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run_forever(stop))
    async with asyncio.timeout(BOUND):
        await started.wait()
    stop.set()
    done, _ = await asyncio.wait([runner], timeout=BOUND)
    assert runner in done, "the worker did not stop"
    runner.result()


class ReapSwallowsTheCancel(InMemoryTaskRepository):
    """A store whose first sweep is under way when the worker is told to stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reaping = asyncio.Event()

    async def expired(self, **kwargs: Any) -> Any:
        if not self.reaping.is_set():
            self.reaping.set()
            await swallows_the_cancel()
        return []


async def test_a_worker_stopped_during_its_first_sweep_stops() -> None:
    env = Env(ReapSwallowsTheCancel)
    store = env.repo
    assert isinstance(store, ReapSwallowsTheCancel)
    await stops_once_started(env.worker(), store.reaping)


class QuietOnCancel:
    """Cancel notices whose stream ends, without an error, when its reader is cancelled."""

    def __init__(self) -> None:
        self.subscribed = asyncio.Event()

    async def notify_cancel(self, task_id: UUID) -> None:
        raise AssertionError("not used")

    async def cancellations(self) -> AsyncIterator[UUID]:
        if self.subscribed.is_set():
            await asyncio.Event().wait()
        self.subscribed.set()
        await swallows_the_cancel()
        return
        yield  # an async generator


async def test_a_worker_whose_cancel_notices_end_quietly_stops() -> None:
    env = Env()
    notices = QuietOnCancel()
    options = WorkerOptions(heartbeat_seconds=3600.0, sweep_seconds=3600.0, poll_seconds=0.05)
    worker = Worker(env.execution(), env.registry, options, cancel_notices=notices)
    await stops_once_started(worker, notices.subscribed)


class Stubborn:
    """An ``async def`` handler that will not stop when cancelled, until ``give_up`` is set."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.give_up = asyncio.Event()
        self.cancels = 0

    def registry(self) -> Registry:
        tasks = Registry()

        @tasks.task("t.stubborn")
        async def stubborn(payload: dict[str, Any], ctx: TaskContext) -> str:
            self.started.set()
            while not self.give_up.is_set():
                try:
                    await self.give_up.wait()
                except asyncio.CancelledError:
                    self.cancels += 1  # told to stop: it does not
            return "finished late"

        return tasks


@pytest.mark.parametrize("forced", [False, True], ids=["after-the-grace", "second-signal"])
async def test_a_handler_that_ignores_its_cancel_is_handed_back_and_left(forced: bool) -> None:
    env, handler = Env(), Stubborn()
    env.registry = handler.registry()
    env.tasks = env.task_service()
    task = await env.submit("t.stubborn")
    grace = 3600.0 if forced else 0.01
    worker = env.worker(shutdown_grace_seconds=grace, stubborn_seconds=0.05)
    stop, force = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(worker.run_forever(stop, force))
    try:
        await until(handler.started)
        stop.set()
        if forced:
            force.set()
        done, _ = await asyncio.wait([runner], timeout=BOUND)
        assert runner in done, "the worker waited for a handler that ignores its cancel"
        runner.result()
        assert handler.cancels >= 1
        assert worker.left_running  # the process must leave without waiting for it
        assert_released(await env.get(task))
        assert await env.queue.pop(["default"], limit=5, timeout=0) == [task.id]
    finally:
        handler.give_up.set()
        await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()})
    # Its late return writes nothing: the attempt was handed back, its lease is gone.
    assert_released(await env.get(task))


async def test_a_handler_that_stops_on_its_cancel_leaves_nothing_running() -> None:
    env = Env()
    task = await env.submit("t.block")
    worker = env.worker(shutdown_grace_seconds=0.01, stubborn_seconds=BOUND)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run_forever(stop))
    await until(env.probe.started)
    stop.set()
    async with asyncio.timeout(BOUND):
        await runner
    assert not worker.left_running
    assert_released(await env.get(task))
