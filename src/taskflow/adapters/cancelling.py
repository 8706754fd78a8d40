"""Stopping a loop that a driver kept running through its cancel.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when a cancel lands in the
same turn as that result: the cancel is lost, the caller carries on. redis-py's pub/sub
``subscribe`` is one such place. The task still counts the request (``Task.cancelling``),
so a loop that must end on cancel asks after every driver call that may have eaten it.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled(exc: BaseException | None = None) -> None:
    """Raise CancelledError when the running task is being cancelled.

    A driver interrupted by the cancel may raise its own error instead, or catch the cancel
    and return; a loop that went on would never end (a worker's shutdown then hung until it
    was killed). Only ``asyncio.timeout`` takes a cancel back (``uncancel``), so a task still
    counted as cancelling was asked to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc
