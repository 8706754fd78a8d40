"""The fleet's ports in memory: unit-test fakes, and the registry, gauge and notices of
`taskflow dev` (one process, so the workers it lists are its own). They pass the same
contract suites as the Redis and SQL adapters (decision 25)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.fleet import QueueDepth, Throughput, WorkerInfo
from taskflow.domain.model import ACTIVE, Task, TaskStatus
from taskflow.domain.ports import Clock


@dataclass(frozen=True, slots=True)
class _Listed:
    worker: WorkerInfo
    until: datetime


class InMemoryWorkerRegistry:
    """Live workers by the clock: one is listed until ttl after its last beat."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._listed: dict[str, _Listed] = {}

    async def beat(self, worker: WorkerInfo, *, ttl_seconds: float) -> None:
        until = self._clock.now() + timedelta(seconds=ttl_seconds)
        self._listed[worker.id] = _Listed(worker, until)

    async def leave(self, worker_id: str) -> None:
        self._listed.pop(worker_id, None)

    async def live(self) -> list[WorkerInfo]:
        now = self._clock.now()
        for worker_id in [i for i, seen in self._listed.items() if seen.until <= now]:
            del self._listed[worker_id]
        return [self._listed[i].worker for i in sorted(self._listed)]


class InMemoryQueueStore:
    """The ``QueueStore`` port over an in-memory store's tasks."""

    def __init__(self, tasks: InMemoryTaskRepository) -> None:
        self._tasks = tasks
        self._paused: dict[str, datetime] = {}

    async def paused(self) -> frozenset[str]:
        return frozenset(self._paused)

    async def set_paused(self, queue: str, paused: bool, *, now: datetime) -> None:
        if paused:
            self._paused.setdefault(queue, now)
        else:
            self._paused.pop(queue, None)

    async def processing(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self._all():
            if task.status in ACTIVE:
                counts[task.queue] = counts.get(task.queue, 0) + 1
        return counts

    async def throughput(self, since: datetime) -> dict[str, Throughput]:
        counts: dict[str, Throughput] = {}
        for task in self._all():
            if task.finished_at is None or task.finished_at < since:
                continue
            seen = counts.get(task.queue, Throughput())
            if task.status is TaskStatus.SUCCESS:
                counts[task.queue] = Throughput(seen.succeeded + 1, seen.failed)
            elif task.status is TaskStatus.FAILED:
                counts[task.queue] = Throughput(seen.succeeded, seen.failed + 1)
        return counts

    def _all(self) -> list[Task]:
        return list(self._tasks._tasks.values())


class InMemoryQueueGauge:
    """The depths of an in-process queue (`taskflow dev`'s)."""

    def __init__(self, queue: InMemoryTaskQueue, clock: Clock) -> None:
        self._queue = queue
        self._clock = clock

    async def depths(self) -> dict[str, QueueDepth]:
        now = self._clock.now()
        queued = self._queue._queued  # task id → the run_at it is queued with
        entries = [
            (name, run_at, i) for name, heap in self._queue._ready.items() for _, run_at, i in heap
        ]
        entries += [(d.queue, d.run_at, d.task_id) for _, _, d in self._queue._delayed]
        counted: set[object] = set()
        ready: dict[str, int] = {}
        delayed: dict[str, int] = {}
        oldest: dict[str, datetime] = {}
        for name, run_at, task_id in entries:
            # An id pushed again with an earlier run_at leaves a stale entry behind.
            if queued.get(task_id) != run_at or task_id in counted:
                continue
            counted.add(task_id)
            if run_at <= now:
                ready[name] = ready.get(name, 0) + 1
                oldest[name] = min(oldest.get(name, run_at), run_at)
            else:
                delayed[name] = delayed.get(name, 0) + 1
        return {
            name: QueueDepth(ready.get(name, 0), delayed.get(name, 0), oldest.get(name))
            for name in sorted({*ready, *delayed})
        }


class InMemoryPauseNotices:
    """Pause notices within one process: each subscriber gets every notice."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[tuple[str, bool]]] = set()

    async def notify_pause(self, queue: str, paused: bool) -> None:
        for subscriber in self._subscribers:
            subscriber.put_nowait((queue, paused))

    async def pauses(self) -> AsyncIterator[tuple[str, bool]]:
        inbox: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._subscribers.add(inbox)
        try:
            while True:
                yield await inbox.get()
        finally:
            self._subscribers.discard(inbox)
