"""Periodic tasks: enqueue each due tick once, list the schedules, pause and resume them.

Every worker process runs ``ScheduleService.run_due`` in a loop. Exactly one task per tick is
the store's doing, not a lock's: a tick is written with its task in one transaction, and the
primary key on (schedule, tick) refuses the second process's (decision 22).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from taskflow.domain.errors import InvalidSubmission, ScheduleNotFound
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.model import Task
from taskflow.domain.ports import (
    Clock,
    ScheduleStore,
    TaskQueue,
    TaskTypes,
    Timetable,
    TraceContext,
)
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.schedules import ScheduleState, due_ticks
from taskflow.domain.services.building import SubmitTask, TaskBuilder
from taskflow.domain.services.dispatching import dispatch


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule with its stored state, as listed: ``next_run_at`` is None while paused."""

    timetable: Timetable
    paused: bool
    last_run_at: datetime | None
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Ticks of ``name`` from ``first`` up to ``until`` were older than the catch-up window."""

    name: str
    first: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class SchedulePass:
    """What one pass did: the tasks it enqueued (with their schedule and tick), the ticks
    it skipped, and when the next tick of any schedule falls (None: no schedule)."""

    enqueued: list[tuple[str, datetime, Task]]
    skipped: list[Skipped]
    next_at: datetime | None


def tick_metadata(name: str, tick: datetime) -> dict[str, str]:
    """What a periodic task carries in its metadata: its schedule and its tick."""
    return {"schedule": name, "tick": tick.isoformat()}


class ScheduleService:
    """The periodic schedules of the Registry, against the store every process shares."""

    def __init__(
        self,
        *,
        store: ScheduleStore,
        queue: TaskQueue,
        types: TaskTypes,
        clock: Clock,
        new_id: Callable[[], UUID],
        retry_policy: RetryPolicy,
        timetables: Sequence[Timetable],
        catchup: timedelta,
        trace: TraceContext | None = None,
    ) -> None:
        """``trace``: tracing is on; a tick's task joins the span its pass runs in."""
        self._store = store
        self._queue = queue
        self._clock = clock
        self._builder = TaskBuilder(
            types=types, new_id=new_id, retry_policy=retry_policy, trace=trace
        )
        self._timetables = {t.name: t for t in timetables}
        self._catchup = catchup
        self._stored: set[str] = set()  # names known to have their row in the store

    @property
    def timetables(self) -> list[Timetable]:
        return list(self._timetables.values())

    async def run_due(self) -> SchedulePass:
        """Enqueue every due tick that no other process enqueued yet."""
        now = self._clock.now()
        states = await self._states(now)
        enqueued: list[tuple[str, datetime, Task]] = []
        skipped, upcoming = [], []
        try:
            for name, timetable in self._timetables.items():
                catchup = timetable.catchup if timetable.catchup is not None else self._catchup
                ticks = due_ticks(timetable.next_after, states[name], now=now, catchup=catchup)
                if ticks.skipped is not None:
                    skipped.append(Skipped(name, *ticks.skipped))
                for tick in ticks.due:
                    task = _build(self._builder, timetable, tick, now)
                    if await self._store.add_tick(name, tick, task):
                        enqueued.append((name, tick, task))
                upcoming.append(ticks.next_at)
        finally:  # what was stored goes to the queue now, even if a later tick failed
            await dispatch(self._queue, [task for _, _, task in enqueued])
        return SchedulePass(enqueued, skipped, min(upcoming, default=None))

    async def list(self, *, tenant: str = DEFAULT_TENANT) -> list[ScheduleView]:
        """The tenant's schedules, by name, with their last and next tick."""
        states = await self._states(self._clock.now())
        return [
            self._view(timetable, states[name])
            for name in sorted(states)
            if (timetable := self._timetables[name]).tenant == tenant
        ]

    async def pause(self, name: str, *, tenant: str = DEFAULT_TENANT) -> ScheduleView:
        """No tick of ``name`` is enqueued until it is resumed; ScheduleNotFound, also for
        another tenant's."""
        return await self._set_paused(name, True, tenant)

    async def resume(self, name: str, *, tenant: str = DEFAULT_TENANT) -> ScheduleView:
        """Ticks after now are enqueued again; those missed while paused are not caught up."""
        return await self._set_paused(name, False, tenant)

    async def _set_paused(self, name: str, paused: bool, tenant: str) -> ScheduleView:
        timetable = self._timetables.get(name)
        if timetable is None or timetable.tenant != tenant:
            raise ScheduleNotFound(f"no schedule is named {name!r}")
        now = self._clock.now()
        await self._ensure(now)
        state = await self._store.set_paused(name, paused, now=now)
        if state is None:  # pragma: no cover - rows are never deleted
            raise ScheduleNotFound(f"no schedule is named {name!r}")
        return self._view(timetable, state)

    async def _states(self, now: datetime) -> dict[str, ScheduleState]:
        names = list(self._timetables)
        if not names:
            return {}
        await self._ensure(now)
        states = await self._store.states(names)
        missing = [name for name in names if name not in states]
        if missing:  # pragma: no cover - rows are never deleted
            raise ScheduleNotFound(f"schedules not stored: {', '.join(missing)}")
        return states

    async def _ensure(self, now: datetime) -> None:
        """Store the schedules this process has not seen stored yet (first seen: now)."""
        if not self._stored.issuperset(self._timetables):
            await self._store.ensure(list(self._timetables), since=now)
            self._stored.update(self._timetables)

    def _view(self, timetable: Timetable, state: ScheduleState) -> ScheduleView:
        after = max(state.after, self._clock.now())
        upcoming = None if state.paused else timetable.next_after(after)
        return ScheduleView(timetable, state.paused, state.last_tick_at, upcoming)


def check_timetables(
    timetables: Sequence[Timetable], types: TaskTypes, retry_policy: RetryPolicy, now: datetime
) -> None:
    """Build each schedule's task once, as a tick would: an unknown type, or a payload that
    does not fit its type, fails here, at start, not at the first tick (InvalidSubmission,
    naming the schedule)."""
    builder = TaskBuilder(types=types, new_id=lambda: UUID(int=0), retry_policy=retry_policy)
    for timetable in timetables:
        try:
            _build(builder, timetable, now, now)
        except InvalidSubmission as exc:
            raise InvalidSubmission(
                f"schedule {timetable.name!r}: {exc.message}", field=exc.field
            ) from None


def _build(builder: TaskBuilder, timetable: Timetable, tick: datetime, now: datetime) -> Task:
    command = SubmitTask(
        type=timetable.type,
        payload=timetable.payload,
        queue=timetable.queue,
        priority=timetable.priority,
        metadata=tick_metadata(timetable.name, tick),
    )
    return builder.build(command, now, None, timetable.tenant)
