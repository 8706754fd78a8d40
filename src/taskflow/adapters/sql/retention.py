"""The retention job's delete: finished tasks past their queue's cutoff, one batch a statement.

Decision 24. The batch is found through ``ix_tasks_finished_at`` (partial: final tasks only),
oldest first, and locked with ``SKIP LOCKED``: concurrent pruners take disjoint batches and
never wait for each other, and a task some other writer holds (a retry) is left for the next
pass. The rows that refer to a task (attempts, changes, and any later table) go with it by
their foreign key's ``ON DELETE CASCADE``. SQLite ignores the locking clause; its writers are
serialised anyway.
"""

from __future__ import annotations

from sqlalchemy import Delete, and_, delete, or_, select
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.sql.schema import status_in, tasks
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
