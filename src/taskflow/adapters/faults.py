"""Crash points for fault tests: wrappers around the ports that kill the process on cue.

Enabled only by the test setting TASKFLOW_FAULTS; production never wraps anything. A crash is
``os._exit``: no cleanup, no flushing, exactly like a SIGKILL at that line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.ports import Dispatch, TaskQueue, TaskRepository

log = logging.getLogger("taskflow.faults")

#: Every crash point there is, and where it strikes.
POINTS = {
    "exit_before_push": "before a push to the queue (the API: after the insert)",
    "exit_after_pop": "after ids were popped from the queue, before they are claimed",
    "exit_after_success": "after a SUCCESS was stored, before anything else",
}
EXIT_CODE = 70


def crash(point: str) -> None:
    log.error("fault injected: exiting", extra={"point": point})
    logging.shutdown()
    os._exit(EXIT_CODE)


class FaultyQueue:
    def __init__(self, inner: TaskQueue, points: frozenset[str]) -> None:
        self._inner = inner
        self._points = points

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        if dispatches and "exit_before_push" in self._points:
            crash("exit_before_push")
        await self._inner.push(dispatches)

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        ids = await self._inner.pop(queues, limit=limit, timeout=timeout)
        if ids and "exit_after_pop" in self._points:
            crash("exit_after_pop")
        return ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FaultyRepository:
    def __init__(self, inner: TaskRepository, points: frozenset[str]) -> None:
        self._inner = inner
        self._points = points

    async def save(self, task: Task, **options: Any) -> None:
        await self._inner.save(task, **options)
        if task.status is TaskStatus.SUCCESS and "exit_after_success" in self._points:
            crash("exit_after_success")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def with_faulty_queue(queue: TaskQueue, points: frozenset[str]) -> TaskQueue:
    return FaultyQueue(queue, points) if points else queue


def with_faulty_repository(repository: TaskRepository, points: frozenset[str]) -> TaskRepository:
    return FaultyRepository(repository, points) if points else repository
