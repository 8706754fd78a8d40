"""The retention job's delete: finished tasks past their queue's cutoff, one batch a statement.

Decision 24. The batch is found through ``ix_tasks_finished_at`` (partial: final tasks only),
oldest first, and locked with ``SKIP LOCKED``: pruners never wait for each other nor take the
same task, and a task some other writer holds (a retry) is left for the next pass. The rows
that refer to a task (attempts, changes, and any later table) go with it by their foreign
key's ``ON DELETE CASCADE``. SQLite ignores the locking clause; its writers are serialised
anyway.

A pass runs alone across the deployment (``Turns``): on PostgreSQL, it holds a session
advisory lock named after the job. On SQLite the passes of one process take turns; several
processes on one file (rare: ``taskflow dev`` locks its file) are serialised by its write lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

from sqlalchemy import Delete, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.sql.schema import status_in, tasks
from taskflow.adapters.turns import LocalTurns
from taskflow.domain.model import FINAL
from taskflow.domain.retention import Cutoffs


def pruning(cutoffs: Cutoffs, *, limit: int) -> Delete | None:
    """The DELETE of at most ``limit`` tasks ``cutoffs`` let go; None when it keeps them all."""
    latest = cutoffs.latest()
    if latest is None:
        return None
    picked = (
        select(tasks.c.id)
        # ``finished_at < latest`` bounds the index scan; ``_due`` applies each queue's cutoff.
        .where(status_in(FINAL), tasks.c.finished_at < latest, _due(cutoffs))
        .order_by(tasks.c.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # A subquery, not a CTE: SQLite counts the rows of a statement only when it starts with
    # DELETE.
    return delete(tasks).where(tasks.c.id.in_(picked))


def _due(cutoffs: Cutoffs) -> ColumnElement[bool]:
    overridden = sorted(cutoffs.by_queue)
    due = []
    if cutoffs.default is not None:
        others = tasks.c.finished_at < cutoffs.default
        due.append(and_(others, tasks.c.queue.not_in(overridden)) if overridden else others)
    for queue in overridden:
        cutoff = cutoffs.by_queue[queue]
        if cutoff is not None:
            due.append(and_(tasks.c.queue == queue, tasks.c.finished_at < cutoff))
    return or_(*due)


class Turns(Protocol):
    def exclusively(self, job: str) -> contextlib.AbstractAsyncContextManager[bool]: ...


def turns_for(autocommit: AsyncEngine) -> Turns:
    if autocommit.dialect.name == "postgresql":
        return AdvisoryTurns(autocommit)
    # Every repository of this process on the same file shares them.
    return _local_turns.setdefault(autocommit.url.render_as_string(), LocalTurns())


_local_turns: dict[str, LocalTurns] = {}


class AdvisoryTurns:
    """A session advisory lock per job, held on a connection of its own for the turn. Should
    that connection die, the lock goes with it and another process may start a turn: still
    safe, since batches skip what another holds."""

    def __init__(self, autocommit: AsyncEngine) -> None:
        self._engine = autocommit

    @contextlib.asynccontextmanager
    async def exclusively(self, job: str) -> AsyncIterator[bool]:
        key = int.from_bytes(hashlib.sha256(job.encode()).digest()[:8], "big", signed=True)
        async with self._engine.connect() as conn:
            alone = bool(await conn.scalar(select(func.pg_try_advisory_lock(key))))
            try:
                yield alone
            finally:
                if alone:
                    await conn.scalar(select(func.pg_advisory_unlock(key)))
