"""What a process is doing, when asked or when its shutdown takes too long."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from taskflow.entrypoints.whereabouts import ShutdownWatch, awaiting, threads_now

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
    assert chain[0].startswith("outer (test_whereabouts.py:")
    assert chain[1].startswith("held_here (test_whereabouts.py:")
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
    twins = [asyncio.create_task(held_here(release)) for _ in range(3)]
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
        await asyncio.gather(job, *twins)
        lingering.join()

    first, second = heard.records[:2]
    waiting_on = first.waiting_on  # type: ignore[attr-defined]
    assert any(w.startswith("outer (") and "held_here (" in w for w in waiting_on)
    assert any(w.startswith("3x held_here (test_whereabouts.py:") for w in waiting_on)
    threads = first.threads  # type: ignore[attr-defined]
    assert any(t.startswith("a-handler-thread: ") for t in threads), threads
    assert (first.waited_s, second.waited_s) == (0.01, 0.02)  # type: ignore[attr-defined]


QUALNAME = "test_each_other_thread_is_named_with_the_line_it_runs"


def test_each_other_thread_is_named_with_the_line_it_runs() -> None:
    inside, leave = threading.Event(), threading.Event()

    def waits_for_the_test() -> None:
        inside.set()
        leave.wait()

    thread = threading.Thread(target=waits_for_the_test, name="blocked-handler")
    thread.start()
    try:
        assert inside.wait(BOUND)
        [found] = [t for t in threads_now() if t.startswith("blocked-handler: ")]
    finally:
        leave.set()
        thread.join()
    calls = found.removeprefix("blocked-handler: ").split(" > ")
    # The innermost four, outermost first: the thread's function, then inside Event.wait.
    assert [c.split(" (")[0].rsplit(".", 1)[-1] for c in calls] == [
        "run",
        "waits_for_the_test",
        "wait",
        "wait",
    ], calls
    assert calls[1].startswith(f"{QUALNAME}.<locals>.waits_for_the_test (test_whereabouts.py:")
    assert calls[3].startswith("Condition.wait (threading.py:"), calls
    assert threading.current_thread().name not in " ".join(threads_now())


def reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "still shutting down"]


async def test_a_cancelled_watch_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskflow")
    ShutdownWatch(asyncio.get_running_loop(), after=0.01).cancel()
    await asyncio.sleep(0.1)
    assert reports(caplog) == []
