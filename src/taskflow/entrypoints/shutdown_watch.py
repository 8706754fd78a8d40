"""Saying what a shutdown waits on, once it has taken longer than it should.

A process told to stop that is still running well past its grace period is stuck: a handler
that will not end, or a loop that lost its cancel (decision 39). Its log says which tasks of
the event loop are still pending and what each awaits, and which threads still run, so that
finding it needs neither a debugger nor a guess.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("taskflow")

#: How far down a task's chain of awaits a report follows.
_DEPTH = 24


class ShutdownWatch:
    """Reports every ``after`` seconds, from its start until its loop ends or `cancel`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, after: float) -> None:
        self._loop = loop
        self._after = after
        self._waited = 0.0
        self._timer = loop.call_later(after, self._report)

    def cancel(self) -> None:
        self._timer.cancel()

    def _report(self) -> None:
        self._waited += self._after
        pending = [task for task in asyncio.all_tasks(self._loop) if not task.done()]
        log.warning(
            "still shutting down",
            extra={
                "waited_s": round(self._waited, 2),
                "waiting_on": sorted(awaiting(task) for task in pending),
                "threads": sorted(
                    t.name for t in threading.enumerate() if t is not threading.main_thread()
                ),
            },
        )
        self._timer = self._loop.call_later(self._after, self._report)


def awaiting(task: asyncio.Task[Any]) -> str:
    """``task``'s chain of awaits, outermost first: ``Worker.run_forever (worker.py:N) > …``."""
    steps: list[str] = []
    step: Any = task.get_coro()
    while step is not None and len(steps) < _DEPTH:
        frame = getattr(step, "cr_frame", None) or getattr(step, "ag_frame", None)
        name = getattr(step, "__qualname__", type(step).__name__)
        if frame is not None:
            name += f" ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"
        steps.append(name)
        step = getattr(step, "cr_await", None) or getattr(step, "ag_await", None)
    return " > ".join(steps)
