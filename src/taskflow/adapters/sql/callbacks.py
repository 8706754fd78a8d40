"""The ``CallbackStore`` port on SQL: completion-webhook callbacks and their deliveries.

Off the hot path (decision 23): only a submission with a ``callback_url`` comes here, and it is
written with plain SQLAlchemy Core, its tasks and callbacks in one transaction. The
deliverers' poll reads the open callbacks through a partial index, joined to their tasks, and
leases what it takes (``FOR UPDATE … SKIP LOCKED`` on PostgreSQL, a compare-and-set on the
lock on both), so two deliverers never send the same message at once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskflow.adapters.sql import history
from taskflow.adapters.sql.dialect import Dialect
from taskflow.adapters.sql.engine import store_errors
from taskflow.adapters.sql.rows import columns, encode, new_row, to_task
from taskflow.adapters.sql.schema import callbacks, deliveries, status_in
from taskflow.adapters.sql.schema import tasks as task_table
from taskflow.domain.deliveries import Delivery, DueCallback
from taskflow.domain.errors import DuplicateTask, IdempotencyKeyReused, TaskNotFound
from taskflow.domain.model import FINAL, Task

_CANDIDATE = (
    callbacks.c.task_id,
    callbacks.c.url,
    callbacks.c.message_id,
    callbacks.c.message_version,
    callbacks.c.message_started_at,
    callbacks.c.tries,
    callbacks.c.attempts,
    task_table.c.version,
)


class SqlCallbackStore:
    """The ``CallbackStore`` port on PostgreSQL or SQLite; see ``InMemoryCallbackStore``."""

    def __init__(self, engine: AsyncEngine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect

    async def add(
        self,
        tasks: Sequence[Task],
        urls: Mapping[UUID, str],
        *,
        key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[list[Task], bool]:
        rows = [new_row(task) for task in tasks]
        encode(rows)  # refuses what the store cannot keep, before anything is written
        async with self._transaction() as conn:
            if key is not None:
                now, _ = self._dialect.times(0.0)
                known = await history.add_keyed(
                    conn,
                    rows,
                    key=key,
                    request_hash=request_hash or "",
                    now=now,
                    insert_on_conflict=self._dialect.insert_on_conflict,
                )
                if known is not None:
                    if known[0] != request_hash:
                        raise IdempotencyKeyReused()
                    return await _tasks_of(conn, known[1]), True
            else:
                await conn.execute(insert(task_table), [columns(row) for row in rows])
            created = {task.id: task.created_at for task in tasks}
            if not urls:
                return list(tasks), False
            await conn.execute(
                insert(callbacks),
                [
                    {
                        "task_id": task_id,
                        "url": url,
                        "next_attempt_at": created[task_id],
                        "tries": 0,
                        "attempts": 0,
                    }
                    for task_id, url in urls.items()
                ],
            )
        return list(tasks), False

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[DueCallback]:
        free = or_(callbacks.c.locked_until.is_(None), callbacks.c.locked_until <= now)
        unsettled = or_(
            callbacks.c.delivered_version.is_(None),
            callbacks.c.delivered_version < task_table.c.version,
        )
        candidates = (
            select(*_CANDIDATE)
            .join(task_table, task_table.c.id == callbacks.c.task_id)
            .where(callbacks.c.next_attempt_at <= now, free, status_in(FINAL), unsettled)
            .order_by(callbacks.c.next_attempt_at)
            .limit(limit)
            .with_for_update(of=callbacks, skip_locked=True)
        )
        until = now + timedelta(seconds=lease_seconds)
        async with self._transaction() as conn:
            won = [
                taken
                for row in (await conn.execute(candidates)).mappings().all()
                if (taken := await _lease(conn, row, now=now, free=free, until=until))
            ]
            found = await _tasks_of(conn, [values["task_id"] for values in won])
        by_id = {task.id: task for task in found}
        return [
            DueCallback(
                task=by_id[values["task_id"]],
                url=values["url"],
                message_id=values["message_id"],
                started_at=values["message_started_at"],
                tries=values["tries"],
                attempt=values["attempts"] + 1,
                token=values["lock_token"],
            )
            for values in won
            if values["task_id"] in by_id
        ]

    async def record(
        self, due: DueCallback, delivery: Delivery, *, retry_at: datetime | None
    ) -> bool:
        values: dict[str, Any] = {
            # Bandit's B105 takes the token of a lease, released here, for a password.
            "lock_token": None,  # nosec B105
            "locked_until": None,
            "tries": due.tries + 1,
            "attempts": due.attempt,
            "next_attempt_at": retry_at,
        }
        if retry_at is None:
            values["delivered_version"] = due.task.version
        stmt = (
            update(callbacks)
            .where(callbacks.c.task_id == due.task.id, callbacks.c.lock_token == due.token)
            .values(values)
        )
        async with self._transaction() as conn:
            if (await conn.execute(stmt)).rowcount != 1:
                return False
            await conn.execute(
                insert(deliveries).values(
                    task_id=due.task.id,
                    attempt=delivery.attempt,
                    at=delivery.at,
                    message_id=due.message_id,
                    status_code=delivery.status_code,
                    error=delivery.error,
                )
            )
        return True

    async def deliveries(self, task_id: UUID) -> tuple[str | None, list[Delivery]]:
        tries = (
            select(
                deliveries.c.attempt, deliveries.c.at, deliveries.c.status_code, deliveries.c.error
            )
            .where(deliveries.c.task_id == task_id)
            .order_by(deliveries.c.attempt)
        )
        async with self._transaction() as conn:
            url = await conn.scalar(select(callbacks.c.url).where(callbacks.c.task_id == task_id))
            if url is None:
                if (
                    await conn.scalar(select(task_table.c.id).where(task_table.c.id == task_id))
                    is None
                ):
                    raise TaskNotFound(f"no task has id {task_id}")
                return None, []
            return url, [Delivery(*row) for row in await conn.execute(tries)]

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        with store_errors():
            async with self._engine.begin() as conn:
                try:
                    yield conn
                except sa_exc.IntegrityError as exc:
                    if self._dialect.is_unique_violation(exc):
                        raise DuplicateTask() from exc
                    raise


async def _lease(
    conn: AsyncConnection,
    row: RowMapping,
    *,
    now: datetime,
    free: Any,
    until: datetime,
) -> dict[str, Any] | None:
    """Lease the candidate ``row`` unless another deliverer took it meanwhile; a new version
    of its task is a new message."""
    values = dict(row)
    values["lock_token"] = uuid.uuid4()
    changes: dict[str, Any] = {"lock_token": values["lock_token"], "locked_until": until}
    if row["message_version"] != row["version"]:
        changes |= {
            "message_id": f"msg_{uuid.uuid4().hex}",
            "message_version": row["version"],
            "message_started_at": now,
            "tries": 0,
        }
    values |= changes
    stmt = update(callbacks).where(callbacks.c.task_id == row["task_id"], free).values(changes)
    return values if (await conn.execute(stmt)).rowcount == 1 else None


async def _tasks_of(conn: AsyncConnection, task_ids: Sequence[UUID]) -> list[Task]:
    if not task_ids:
        return []
    found = await conn.execute(select(task_table).where(task_table.c.id.in_(task_ids)))
    by_id = {task.id: task for task in map(to_task, found.mappings())}
    return [by_id[i] for i in task_ids if i in by_id]
