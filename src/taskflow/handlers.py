"""What a task handler sees: its context, and the two ways to steer retries.

See docs/api.md, "Python API".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any
from uuid import UUID

from taskflow.domain.model import Progress


class Fail(Exception):
    """Fail the task at once, without retrying."""


class Retry(Exception):
    """Retry the task after ``after`` seconds (counts as a failed attempt)."""

    def __init__(self, after: float = 0.0, message: str = "retry requested") -> None:
        super().__init__(message)
        self.after = max(0.0, float(after))


ProgressSink = Callable[[Progress], Awaitable[None]]


class TaskContext:
    """Facts about the running attempt, and a way to report progress.

    ``token`` is unique to this attempt: use it (or ``task_id`` with ``attempt``) as the
    idempotency key of side effects, since delivery is at-least-once.
    """

    __slots__ = ("_cancelled", "_loop", "_sink", "attempt", "queue", "task_id", "token", "type")

    def __init__(
        self,
        *,
        task_id: UUID,
        type: str,
        queue: str,
        attempt: int,
        token: UUID,
        sink: ProgressSink,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.task_id = task_id
        self.type = type
        self.queue = queue
        self.attempt = attempt
        self.token = token
        self._sink = sink
        self._loop = loop
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this task was requested and the worker heard of it.

        A plain ``def`` handler polls it and returns (or raises) early: the attempt then ends
        CANCELLED whatever the handler did. An ``async def`` handler need not poll: it is
        cancelled (``asyncio.CancelledError``). Safe to read from any thread.
        """
        # One attribute written once by the worker's loop and read by the handler's thread:
        # a single reference store and load, atomic in CPython with or without the GIL.
        return self._cancelled

    def mark_cancelled(self) -> None:
        """For the worker: the cancel of this attempt's task was requested."""
        self._cancelled = True

    def progress(self, fraction: float, message: str = "") -> _Reported:
        """Record how far the handler got. Await it in ``async def`` handlers.

        In a plain ``def`` handler (which runs in a thread) call it without ``await``:
        the report is sent from the worker's event loop and this call waits for it.
        """
        report = Progress(fraction, message)
        if _on_loop(self._loop):
            return _Reported(self._sink(report))
        future = asyncio.run_coroutine_threadsafe(_send(self._sink, report), self._loop)
        future.result()
        return _Reported(None)


class _Reported:
    """Awaitable wrapper so ``await ctx.progress(...)`` works from async handlers."""

    __slots__ = ("_pending",)

    def __init__(self, pending: Awaitable[None] | None) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        if self._pending is not None:
            yield from self._pending.__await__()


async def _send(sink: ProgressSink, report: Progress) -> None:
    await sink(report)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # a plain `def` handler, in a worker thread
        return False
