"""The ``ScheduleStore`` port on SQL, for PostgreSQL and SQLite alike (decision 22).

A tick is enqueued in one transaction: the schedule's row is updated first (which, on
PostgreSQL, makes racing processes wait for each other, and refuses a paused schedule), then
the task and the tick are inserted. The primary key of ``schedule_ticks`` refuses a tick that
another process enqueued: that transaction is rolled back, and its task with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.sql.dialect import Dialect, dialect_for
from taskflow.adapters.sql.engine import store_errors
from taskflow.adapters.sql.rows import columns, encode, new_row
from taskflow.adapters.sql.schema import schedule_ticks, schedules
from taskflow.adapters.sql.schema import tasks as tasks_table
from taskflow.domain.model import Task
from taskflow.domain.schedules import ScheduleState


class SqlScheduleStore:
    """The ``ScheduleStore`` port on PostgreSQL or SQLite; see ``InMemoryScheduleStore``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect: Dialect = dialect_for(engine, SystemClock())

    async def states(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        stmt = select(schedules).where(schedules.c.name.in_(list(names)))
        with store_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return {
            row["name"]: ScheduleState(
                row["name"], row["paused"], row["since"], row["last_tick_at"]
            )
            for row in rows
        }

    async def ensure(self, names: Sequence[str], *, since: datetime) -> None:
        if not names:
            return
        values = [
            {"name": name, "paused": False, "since": since, "updated_at": since} for name in names
        ]
        stmt = (
            self._dialect.insert_on_conflict(schedules)
            .values(values)
            .on_conflict_do_nothing(index_elements=[schedules.c.name])
        )
        with store_errors():
            async with self._engine.begin() as conn:
                await conn.execute(stmt)

    async def add_tick(self, name: str, tick: datetime, task: Task) -> bool:
        row = new_row(task)
        encode([row])  # refuses what the store cannot keep, before anything is written
        later = (schedules.c.last_tick_at.is_(None)) | (schedules.c.last_tick_at < tick)
        claim = (
            update(schedules)
            .where(schedules.c.name == name, schedules.c.paused.is_(False))
            .values(last_tick_at=case((later, tick), else_=schedules.c.last_tick_at))
            .returning(schedules.c.name)
        )
        tick_row = {"schedule": name, "tick": tick, "task_id": task.id}
        with store_errors():
            try:
                async with self._engine.begin() as conn:
                    if await conn.scalar(claim) is None:
                        return False  # paused or unknown: the update wrote nothing
                    await conn.execute(insert(tasks_table), [columns(row)])
                    await conn.execute(insert(schedule_ticks).values(tick_row))
            except sa_exc.IntegrityError as exc:
                if self._dialect.is_unique_violation(exc):
                    return False  # another process enqueued this tick
                raise
        return True

    async def set_paused(self, name: str, paused: bool, *, now: datetime) -> ScheduleState | None:
        values: dict[str, object] = {"paused": paused, "updated_at": now}
        if not paused:  # ticks missed while paused are not caught up
            values["since"] = case((schedules.c.paused, now), else_=schedules.c.since)
        stmt = (
            update(schedules).where(schedules.c.name == name).values(values).returning(*schedules.c)
        )
        with store_errors():
            async with self._engine.begin() as conn:
                row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        return ScheduleState(row["name"], row["paused"], row["since"], row["last_tick_at"])
