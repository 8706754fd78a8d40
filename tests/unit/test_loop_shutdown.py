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
from tests.unit.test_worker import BOUND, Env

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
