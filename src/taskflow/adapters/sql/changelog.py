"""People's changes to tasks on SQL: the task's new version and the change's record together.

Not on a hot path (a retry is an operator's act), so plain SQLAlchemy Core in one transaction
on both databases: each task is written only where its stored version is the one the change
was computed from, and its change is recorded only if it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from taskflow.adapters.sql.rows import changed_row, columns, encode
from taskflow.adapters.sql.schema import callbacks, task_changes, tasks
from taskflow.domain.changes import ChangeAction, TaskChange
from taskflow.domain.model import Task


def checked(items: Sequence[tuple[Task, TaskChange]]) -> list[dict[str, Any]]:
    """The columns each task's save writes, its payload included; raises UnstorableValue for a
    value the store cannot keep (U+0000), before anything is written."""
    rows = []
    for task, _ in items:
        row = changed_row(task)
        row.payload = task.payload
        rows.append(row)
    encode(rows)
    return [columns(row) for row in rows]


async def save_changed(
    conn: AsyncConnection, items: Sequence[tuple[Task, TaskChange]], values: list[dict[str, Any]]
) -> set[UUID]:
    """Write each task of ``items`` whose version still matches, and record its change;
    ``values`` are ``checked(items)``. Returns the ids written."""
    written: set[UUID] = set()
    recorded = []
    for (task, change), columns_ in zip(items, values, strict=True):
        stmt = (
            update(tasks)
            .where(tasks.c.id == task.id, tasks.c.version == task.version - 1)
            .values(columns_)
        )
        if (await conn.execute(stmt)).rowcount == 1:
            written.add(task.id)
            recorded.append(_row(change))
    if recorded:
        await conn.execute(insert(task_changes), recorded)
        # A task that ends again is called back again (decision 23): its callback reopens, and
        # a delivery of its previous end still under way loses its lease.
        reopen = update(callbacks).where(callbacks.c.task_id.in_(written))
        await conn.execute(
            reopen.values(
                next_attempt_at=min(change.at for _, change in items),
                lock_token=None,
                locked_until=None,
            )
        )
    return written


async def changes_of(conn: AsyncConnection, task_id: UUID) -> list[TaskChange] | None:
    """The task's changes, oldest first; None when there is no such task."""
    stmt = select(task_changes).where(task_changes.c.task_id == task_id)
    rows = (await conn.execute(stmt.order_by(task_changes.c.id))).mappings().all()
    if not rows and await conn.scalar(select(tasks.c.id).where(tasks.c.id == task_id)) is None:
        return None
    return [_change(r) for r in rows]


def _row(change: TaskChange) -> dict[str, Any]:
    return {
        "task_id": change.task_id,
        "action": change.action.value,
        "at": change.at,
        "by": change.by,
        "after_attempt": change.after_attempt,
        "payload_before": change.payload_before,
        "payload_after": change.payload_after,
    }


def _change(row: RowMapping) -> TaskChange:
    return TaskChange(
        task_id=row["task_id"],
        action=ChangeAction(row["action"]),
        at=row["at"],
        by=row["by"],
        after_attempt=row["after_attempt"],
        payload_before=row["payload_before"],
        payload_after=row["payload_after"],
    )
