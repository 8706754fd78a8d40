"""A shutdown that takes too long says what it waits on (`entrypoints.shutdown_watch`)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from taskflow.entrypoints.shutdown_watch import ShutdownWatch, awaiting

BOUND = 10.0


async def held_here(event: asyncio.Event) -> None:
    await event.wait()


async def outer(event: asyncio.Event) -> None:
    await held_here(event)


async def test_a_chain_of_awaits_is_named_outermost_first() -> None:
    release = asyncio.Event()
    job = asyncio.create_task(outer(release))
    await asyncio.sleep(0)  # it waits now
    try:
        chain = awaiting(job).split(" > ")
    finally:
        release.set()
        await job
    assert chain[0].startswith("outer (test_shutdown_watch.py:")
    assert chain[1].startswith("held_here (test_shutdown_watch.py:")
    assert chain[2].startswith("Event.wait (locks.py:")


class Reports(logging.Handler):
    """The watch's lines as they come; ``two`` is set at the second."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.two = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "still shutting down":
            self.records.append(record)
            if len(self.records) >= 2:
                self.two.set()


async def test_the_watch_reports_the_pending_tasks_and_threads_again_and_again() -> None:
    heard = Reports()
    logger = logging.getLogger("taskflow")
    logger.addHandler(heard)
    release, gone = asyncio.Event(), threading.Event()
    job = asyncio.create_task(outer(release))
    lingering = threading.Thread(target=gone.wait, name="a-handler-thread")
    lingering.start()
    watch = ShutdownWatch(asyncio.get_running_loop(), after=0.01)
    try:
        await asyncio.wait_for(heard.two.wait(), BOUND)
    finally:
        watch.cancel()
        logger.removeHandler(heard)
        release.set()
        gone.set()
        await job
        lingering.join()

    first, second = heard.records[:2]
    waiting_on = first.waiting_on  # type: ignore[attr-defined]
    assert any(w.startswith("outer (") and "held_here (" in w for w in waiting_on)
    assert "a-handler-thread" in first.threads  # type: ignore[attr-defined]
    assert (first.waited_s, second.waited_s) == (0.01, 0.02)  # type: ignore[attr-defined]


def reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "still shutting down"]


async def test_a_cancelled_watch_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskflow")
    ShutdownWatch(asyncio.get_running_loop(), after=0.01).cancel()
    await asyncio.sleep(0.1)
    assert reports(caplog) == []
