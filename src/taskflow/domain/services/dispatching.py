"""Handing PENDING tasks to the queue, shared by both services."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from uuid import UUID

from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.ports import Dispatch, TaskQueue, TaskRepository

#: How often a write that lost a race is re-read and tried again before giving up.
CAS_ATTEMPTS = 8

#: Which queues are paused now (read when a pop returns); None: the caller never pauses.
Paused = Callable[[], Collection[str]] | None


async def dispatch(queue: TaskQueue, tasks: Sequence[Task]) -> None:
    """Hand PENDING tasks to the queue. If it is down, the reconciler dispatches them later."""
    dispatches = [Dispatch.of(t) for t in tasks if t.status is TaskStatus.PENDING]
    if not dispatches:
        return
    try:
        await queue.push(dispatches)
    except QueueUnavailable:
        return


async def put_back_paused(
    repository: TaskRepository, queue: TaskQueue, ids: list[UUID], paused: Collection[str]
) -> list[UUID]:
    """``ids`` without those of PENDING tasks in a ``paused`` queue, which go back to the queue
    unclaimed: popped as the pause landed, they count no attempt (decision 25). Only called
    while a queue is paused, so the read costs nothing otherwise."""
    found = await repository.get_many(ids)
    held = [t for t in found if t.queue in paused and t.status is TaskStatus.PENDING]
    await dispatch(queue, held)
    back = {t.id for t in held}
    return [i for i in ids if i not in back]
