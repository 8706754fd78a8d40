"""The ``QueueStore`` port on SQL, for PostgreSQL and SQLite alike (decision 25).

Every read here goes through an index the hot path keeps anyway, so none of them needs one
of its own (the plans are in docs/operations.md, "Queues and workers"):

- what runs: ``status = 'PROCESSING'`` reads the partial ``ix_tasks_lease_expires_at``, which
  holds only running tasks (as many as the workers' slots);
- what finished lately: ``finished_at >= since`` among the final statuses reads the partial
  ``ix_tasks_finished_at`` (the retention job's), one minute of it;
- what is paused: ``paused_queues``, a handful of rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Executable, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.sql.dialect import Dialect, dialect_for
from taskflow.adapters.sql.engine import store_errors
from taskflow.adapters.sql.schema import paused_queues, status_in, tasks
from taskflow.domain.fleet import Throughput
from taskflow.domain.model import ACTIVE, FINAL, TaskStatus


class SqlQueueStore:
    """The ``QueueStore`` port on PostgreSQL or SQLite; see ``InMemoryQueueStore``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect: Dialect = dialect_for(engine, SystemClock())

    async def paused(self) -> frozenset[str]:
        with store_errors():
            async with self._engine.connect() as conn:
                names = (await conn.execute(select(paused_queues.c.name))).scalars().all()
        return frozenset(names)

    async def set_paused(self, queue: str, paused: bool, *, now: datetime) -> None:
        stmt: Executable
        if paused:
            stmt = (
                self._dialect.insert_on_conflict(paused_queues)
                .values(name=queue, paused_at=now)
                .on_conflict_do_nothing(index_elements=[paused_queues.c.name])
            )
        else:
            stmt = delete(paused_queues).where(paused_queues.c.name == queue)
        with store_errors():
            async with self._engine.begin() as conn:
                await conn.execute(stmt)

    async def processing(self) -> dict[str, int]:
        # ACTIVE is exactly the partial index's predicate, so the planner can prove it applies.
        stmt = select(tasks.c.queue, func.count()).where(status_in(ACTIVE)).group_by(tasks.c.queue)
        with store_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return {row[0]: row[1] for row in rows}

    async def throughput(self, since: datetime) -> dict[str, Throughput]:
        stmt = (
            select(tasks.c.queue, tasks.c.status, func.count())
            .where(status_in(FINAL), tasks.c.finished_at >= since)
            .group_by(tasks.c.queue, tasks.c.status)
        )
        with store_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        counts: dict[str, Throughput] = {}
        for queue, status, count in rows:
            seen = counts.get(queue, Throughput())
            if status == TaskStatus.SUCCESS.value:
                seen = Throughput(seen.succeeded + count, seen.failed)
            elif status == TaskStatus.FAILED.value:
                seen = Throughput(seen.succeeded, seen.failed + count)
            else:
                continue  # CANCELLED: neither
            counts[queue] = seen
        return counts
