"""What a process is doing now: each task of its event loop and each of its threads, and where.

Two moments ask for it. A shutdown still under way well past its grace is stuck (a handler that
will not end, a loop that lost its cancel: decisions 39 and 40): `ShutdownWatch` logs it at
intervals. And an operator may ask any time with SIGUSR1, as Celery's workers answer it, to see
where a busy or quiet process stands. Either way no debugger is needed, nor a guess.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("taskflow")

#: How far down a task's chain of awaits a report follows.
_DEPTH = 24
#: How many of a thread's innermost calls a report shows.
_THREAD_DEPTH = 4


def log_whereabouts(loop: asyncio.AbstractEventLoop, event: str, **facts: Any) -> None:
    """One WARNING line: ``facts``, the pending tasks of ``loop`` as their chains of awaits
    (``nx chain`` for ``n`` tasks at the same place), and every thread but the loop's own
    with the calls it is in. A busy process's line may run past the 4 KiB of other lines."""
    chains = Counter(awaiting(task) for task in asyncio.all_tasks(loop) if not task.done())
    waiting_on = [chain if n == 1 else f"{n}x {chain}" for chain, n in sorted(chains.items())]
    log.warning(event, extra={**facts, "waiting_on": waiting_on, "threads": threads_now()})


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
        log_whereabouts(self._loop, "still shutting down", waited_s=round(self._waited, 2))
        self._timer = self._loop.call_later(self._after, self._report)


def awaiting(task: asyncio.Task[Any]) -> str:
    """``task``'s chain of awaits, outermost first: ``Worker.run_forever (worker.py:N) > …``."""
    steps: list[str] = []
    step: Any = task.get_coro()
    while step is not None and len(steps) < _DEPTH:
        frame = getattr(step, "cr_frame", None) or getattr(step, "ag_frame", None)
        name = getattr(step, "__qualname__", type(step).__name__)
        if name != "FutureIter":  # a bare future at the end: says nothing
            steps.append(name if frame is None else f"{name} ({_where(frame)})")
        step = getattr(step, "cr_await", None) or getattr(step, "ag_await", None)
    return " > ".join(steps)


def threads_now() -> list[str]:
    """Each thread but the calling one, as ``name: f (a.py:N) > g (b.py:M)``, its innermost
    ``_THREAD_DEPTH`` calls outermost first; sorted."""
    frames = sys._current_frames()
    me = threading.get_ident()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if thread.ident == me or frame is None:
            continue
        calls: list[str] = []
        while frame is not None and len(calls) < _THREAD_DEPTH:
            calls.append(f"{frame.f_code.co_qualname} ({_where(frame)})")
            frame = frame.f_back
        found.append(f"{thread.name}: {' > '.join(reversed(calls))}")
    return sorted(found)


def _where(frame: FrameType) -> str:
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
