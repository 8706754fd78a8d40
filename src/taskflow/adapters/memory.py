"""In-memory store and queue: the reference fakes for unit tests, and the queue of `taskflow dev`.

They pass the same contract suites (tests/contracts) as the real adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from taskflow.adapters.memory_callbacks import InMemoryCallbackStore
from taskflow.adapters.memory_keys import InMemoryKeyStore
from taskflow.adapters.turns import LocalTurns
from taskflow.domain.attempts import Attempt, AttemptEnd, with_running
from taskflow.domain.changes import TaskChange
from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    InvalidTransition,
    StaleTask,
    TaskNotFound,
)
from taskflow.domain.flow import Popped
from taskflow.domain.model import ACTIVE, CLAIMABLE, FINAL, UNFINISHED, Lease, Task
from taskflow.domain.ports import Clock, Dispatch, PoppedIds, Renewal
from taskflow.domain.queries import Position, TaskCount, TaskQuery
from taskflow.domain.retention import Cutoffs
from taskflow.domain.schedules import ScheduleState
from taskflow.domain.throughput import MinuteCount, minute_of


class InMemoryTaskRepository:
    def __init__(self, clock: Clock) -> None:
        self._turns = LocalTurns()
        self._clock = clock
        self._tasks: dict[UUID, Task] = {}
        self._attempts: dict[UUID, list[Attempt]] = {}
        self._changes: dict[UUID, list[TaskChange]] = {}
        # key → (request hash, task ids, when stored)
        self._keys: dict[str, tuple[str, list[UUID], datetime]] = {}
        self._callback_store: InMemoryCallbackStore | None = None
        self._key_store = InMemoryKeyStore()

    async def add(self, task: Task) -> None:
        await self.add_many([task])

    async def add_many(self, tasks: Sequence[Task]) -> None:
        ids = [t.id for t in tasks]
        if len(set(ids)) != len(ids) or any(i in self._tasks for i in ids):
            raise DuplicateTask()
        self._tasks.update((t.id, t) for t in tasks)

    async def add_idempotent(
        self, tasks: Sequence[Task], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]:
        # No await between the look-up and the insert: a racing twin sees one or the other.
        known = self._keys.get(key)
        if known is None:
            await self.add_many(tasks)
            self._keys[key] = (request_hash, [t.id for t in tasks], self._clock.now())
            return list(tasks), False
        if known[0] != request_hash:
            raise IdempotencyKeyReused()
        return await self.get_many(known[1]), True

    async def replay(self, key: str, request_hash: str) -> list[Task] | None:
        known = self._keys.get(key)
        if known is None:
            return None
        if known[0] != request_hash:
            raise IdempotencyKeyReused()
        return await self.get_many(known[1])

    async def prune_idempotency_keys(self, older_than: datetime) -> int:
        old = [key for key, (_, _, stored_at) in self._keys.items() if stored_at < older_than]
        for key in old:
            del self._keys[key]
        return len(old)

    async def prune_finished(self, cutoffs: Cutoffs, *, limit: int) -> int:
        expired = sorted(
            (task.finished_at, task.id)
            for task in self._tasks.values()
            if task.status in FINAL
            and task.finished_at is not None
            and (cutoff := cutoffs.of(task.queue)) is not None
            and task.finished_at < cutoff
        )[:limit]
        for _, task_id in expired:
            del self._tasks[task_id]
            self._attempts.pop(task_id, None)
            self._changes.pop(task_id, None)
        return len(expired)

    def exclusively(self, job: str) -> contextlib.AbstractAsyncContextManager[bool]:
        return self._turns.exclusively(job)

    async def attempts(self, task_id: UUID) -> list[Attempt]:
        task = await self.get(task_id)
        return with_running(task, list(self._attempts.get(task_id, [])))

    async def get(self, task_id: UUID) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(f"no task has id {task_id}") from None

    async def get_many(self, task_ids: Sequence[UUID]) -> list[Task]:
        return [self._tasks[i] for i in task_ids if i in self._tasks]

    async def popped(self, task_ids: Sequence[UUID], *, keys: Collection[str]) -> list[Popped]:
        return [
            Popped(t.id, t.type, t.queue, t.priority, t.status, t.attempts, t.payload)
            for t in await self.get_many(task_ids)
        ]

    async def save(self, task: Task, *, closing: AttemptEnd | None = None) -> None:
        stored = await self.get(task.id)
        if stored.version != task.version - 1:
            raise StaleTask()
        self._tasks[task.id] = task.keeping_renewal_of(stored)
        if closing is not None:
            history = self._attempts.setdefault(task.id, [])
            numbers = [attempt.number for attempt in history]
            if closing.attempt not in numbers:
                history.append(Attempt.ended(task.id, closing))
                history.sort(key=lambda attempt: attempt.number)

    async def claim(
        self, task_ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> list[Task]:
        now = self._clock.now()
        claimed = []
        for task_id in dict.fromkeys(task_ids):
            task = self._tasks.get(task_id)
            if task is None or task.status not in CLAIMABLE or task.run_at > now:
                continue
            lease = Lease(uuid.uuid4(), worker_id, now + timedelta(seconds=lease_seconds))
            self._tasks[task_id] = running = task.claim(lease, now=now)
            claimed.append(running)
        return claimed

    async def renew_leases(self, leases: Mapping[UUID, UUID], *, lease_seconds: float) -> Renewal:
        now = self._clock.now()
        held, cancelling = set(), set()
        for task_id, token in leases.items():
            task = self._tasks.get(task_id)
            if task is None:
                continue
            try:
                self._tasks[task_id] = task.renew_lease(token, now=now, lease_seconds=lease_seconds)
            except InvalidTransition:
                continue  # not held by this token, or expired
            held.add(task_id)
            if task.cancel_requested:
                cancelling.add(task_id)
        return Renewal(frozenset(held), frozenset(cancelling))

    async def expired(self, *, limit: int, horizon_seconds: float | None = 0.0) -> list[Task]:
        now = self._clock.now()
        found = [
            (t.lease.expires_at, t)
            for t in self._tasks.values()
            if t.status in ACTIVE
            and t.lease is not None
            and (
                horizon_seconds is None
                or t.lease.expires_at <= now + timedelta(seconds=horizon_seconds)
            )
        ]
        found.sort(key=lambda pair: pair[0])
        return [t for _, t in found[:limit]]

    async def pending(self, *, after: UUID | None, limit: int) -> list[Dispatch]:
        ids = sorted(i for i, t in self._tasks.items() if t.status in CLAIMABLE)
        if after is not None:
            ids = [i for i in ids if i > after]
        return [Dispatch.of(self._tasks[i]) for i in ids[:limit]]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def find(self, query: TaskQuery, *, after: Position | None, limit: int) -> list[Task]:
        found = [
            t
            for t in self._tasks.values()
            if query.matches(t) and (after is None or Position.of(t) < after)
        ]
        found.sort(key=Position.of, reverse=True)
        return found[:limit]

    async def stats(self, *, tenant: str | None) -> list[TaskCount]:
        counts = Counter((t.queue, t.type, t.status) for t in self._of(tenant))
        return [TaskCount(*key, count) for key, count in sorted(counts.items())]

    async def finished_per_minute(
        self, since: datetime, *, tenant: str | None
    ) -> list[MinuteCount]:
        counts = Counter(
            (minute_of(t.finished_at, since), t.status)
            for t in self._of(tenant)
            if t.status in FINAL and t.finished_at is not None and t.finished_at >= since
        )
        return [MinuteCount(*key, count) for key, count in sorted(counts.items())]

    async def count_unfinished(self, tenant: str) -> int:
        return sum(t.status in UNFINISHED for t in self._of(tenant))

    def _of(self, tenant: str | None) -> Iterable[Task]:
        every = self._tasks.values()
        return every if tenant is None else (t for t in every if t.tenant == tenant)

    async def save_changed(self, items: Sequence[tuple[Task, TaskChange]]) -> set[UUID]:
        written = set()
        for task, change in items:
            stored = self._tasks.get(task.id)
            if stored is None or stored.version != task.version - 1:
                continue
            self._tasks[task.id] = task
            self._changes.setdefault(task.id, []).append(change)
            written.add(task.id)
        return written

    async def changes(self, task_id: UUID) -> list[TaskChange]:
        await self.get(task_id)
        return list(self._changes.get(task_id, []))

    def callback_store(self) -> InMemoryCallbackStore:
        """The completion-webhook callbacks of these tasks: always the same store."""
        if self._callback_store is None:
            self._callback_store = InMemoryCallbackStore(self)
        return self._callback_store

    def key_store(self) -> InMemoryKeyStore:
        """The API keys kept beside these tasks: always the same store."""
        return self._key_store


class InMemoryTaskQueue:
    """Due ids come out highest priority first, then by run_at, then by task id.

    Pushing an id that is queued already changes nothing, unless the new run_at is earlier.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ready: dict[str, list[tuple[int, datetime, UUID]]] = {}
        self._delayed: list[tuple[datetime, int, Dispatch]] = []
        self._queued: dict[UUID, datetime] = {}
        self._types: dict[UUID, str] = {}  # of the queued ids whose push told it
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._intact = False

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        now = self._clock.now()
        for d in dispatches:
            queued_at = self._queued.get(d.task_id)
            if queued_at is not None and queued_at <= d.run_at:
                continue
            self._queued[d.task_id] = d.run_at
            if d.type:
                self._types[d.task_id] = d.type
            if d.run_at <= now:
                self._make_ready(d)
            else:
                heapq.heappush(self._delayed, (d.run_at, next(self._seq), d))
        self._changed.set()

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            taken = self._take(queues, limit)
            remaining = deadline - loop.time()
            if taken or remaining <= 0:
                return taken
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait(), timeout=min(remaining, self._until_next_due())
                )

    async def absent(self, dispatches: Sequence[Dispatch]) -> list[Dispatch]:
        return [d for d in dispatches if d.task_id not in self._queued]

    async def intact(self) -> bool:
        # A new process starts empty: its first sweep must refill it from the store.
        return self._intact

    async def mark_intact(self) -> None:
        self._intact = True

    async def warnings(self) -> list[str]:
        return []

    async def ping(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._queued)

    def _take(self, queues: Sequence[str], limit: int) -> PoppedIds:
        self._promote(self._clock.now())
        taken = PoppedIds()
        for name in queues:
            heap = self._ready.get(name, [])
            while heap and len(taken) < limit:
                task_id = heapq.heappop(heap)[2]
                # An id pushed again with an earlier run_at has a second entry; take it once.
                if self._queued.pop(task_id, None) is not None:
                    taken.append(task_id)
                    kind = self._types.pop(task_id, None)
                    if kind is not None:
                        taken.kinds[task_id] = (name, kind)
        return taken

    def _promote(self, now: datetime) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            self._make_ready(heapq.heappop(self._delayed)[2])

    def _make_ready(self, d: Dispatch) -> None:
        heap = self._ready.setdefault(d.queue, [])
        heapq.heappush(heap, (-d.priority, d.run_at, d.task_id))

    def _until_next_due(self) -> float:
        if not self._delayed:
            return 3600.0
        return max(0.001, (self._delayed[0][0] - self._clock.now()).total_seconds())


class InMemoryCancelNotices:
    """Cancel notices within one process (`taskflow dev`): each subscriber gets every notice."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[UUID]] = set()

    async def notify_cancel(self, task_id: UUID) -> None:
        for subscriber in self._subscribers:
            subscriber.put_nowait(task_id)

    async def cancellations(self) -> AsyncIterator[UUID]:
        inbox: asyncio.Queue[UUID] = asyncio.Queue()
        self._subscribers.add(inbox)
        try:
            while True:
                yield await inbox.get()
        finally:
            self._subscribers.discard(inbox)


class InMemoryScheduleStore:
    """The ``ScheduleStore`` port in memory, writing its ticks' tasks to ``tasks``."""

    def __init__(self, tasks: InMemoryTaskRepository) -> None:
        self._tasks = tasks
        self._states: dict[str, ScheduleState] = {}
        self._ticks: set[tuple[str, datetime]] = set()

    async def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        return {name: self._states[name] for name in names if name in self._states}

    async def ensure(self, names: Sequence[str], *, since: datetime) -> None:
        for name in names:
            self._states.setdefault(name, ScheduleState(name, False, since))

    async def add_tick(self, name: str, tick: datetime, task: Task) -> bool:
        # No await before the writes: a racing pass sees the tick or does not run yet.
        state = self._states.get(name)
        if state is None or state.paused or (name, tick) in self._ticks:
            return False
        await self._tasks.add(task)
        self._ticks.add((name, tick))
        last = tick if state.last_tick_at is None else max(state.last_tick_at, tick)
        self._states[name] = replace(state, last_tick_at=last)
        return True

    async def set_paused(self, name: str, paused: bool, *, now: datetime) -> ScheduleState | None:
        state = self._states.get(name)
        if state is None:
            return None
        since = now if state.paused and not paused else state.since
        self._states[name] = replace(state, paused=paused, since=since)
        return self._states[name]
