"""Handing PENDING tasks to the queue, shared by both services."""

from __future__ import annotations

from collections.abc import Sequence

from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.ports import Dispatch, TaskQueue

#: How often a write that lost a race is re-read and tried again before giving up.
CAS_ATTEMPTS = 8


async def dispatch(queue: TaskQueue, tasks: Sequence[Task]) -> None:
    """Hand PENDING tasks to the queue. If it is down, the reconciler dispatches them later."""
    dispatches = [Dispatch.of(t) for t in tasks if t.status is TaskStatus.PENDING]
    if not dispatches:
        return
    try:
        await queue.push(dispatches)
    except QueueUnavailable:
        return
