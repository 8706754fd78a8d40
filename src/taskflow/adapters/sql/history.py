"""What the SQL task store writes besides the task rows: attempts and idempotency keys.

Each function runs on a connection the repository opened, so a history row is written in the
same transaction (on PostgreSQL: the same statement) as the task change it belongs to. SQLite
has no data-modifying CTEs; there the write is a transaction and the history row a second
statement (the group-committed save writes the ended attempts in ``postgres.SAVE_SQL``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, Update, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.sql.rows import Row, columns, task_error, to_task
from taskflow.adapters.sql.schema import attempts, idempotency_keys, tasks
from taskflow.domain.attempts import Attempt, AttemptEnd, AttemptOutcome, with_running
from taskflow.domain.errors import StaleTask

# A replay can only lose its key row to the prune of keys a day old; then the key is new again.
_KEY_TRIES = 3


async def claimed(conn: AsyncConnection, claiming: Update) -> Sequence[RowMapping]:
    """SQLite: run ``claiming``. No attempt row is written before the attempt ends
    (decision 18): while it runs, the task row tells it."""
    return (await conn.execute(claiming)).mappings().all()


async def end_attempt(conn: AsyncConnection, task_id: UUID, end: AttemptEnd) -> None:
    """SQLite: write the attempt ``end`` describes, after its task's change was written in the
    caller's transaction. An attempt written already stays as it is, unless a claim before
    decision 18 left it open: then it is closed."""
    stmt = sqlite.insert(attempts).values(
        task_id=task_id,
        attempt=end.attempt,
        worker_id=end.worker_id,
        started_at=end.started_at,
        finished_at=end.finished_at,
        outcome=end.outcome,
        error=end.error,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[attempts.c.task_id, attempts.c.attempt],
            set_={"finished_at": end.finished_at, "outcome": end.outcome, "error": end.error},
            where=attempts.c.finished_at.is_(None),
        )
    )


async def attempts_of(conn: AsyncConnection, task_id: UUID) -> list[Attempt] | None:
    """The task's attempts, oldest first, the running one included; None when there is no
    such task."""
    task = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).mappings().first()
    if task is None:
        return None
    stmt = select(attempts).where(attempts.c.task_id == task_id).order_by(attempts.c.attempt)
    rows = (await conn.execute(stmt)).mappings().all()
    return with_running(to_task(task), [_to_attempt(r) for r in rows])


#: ``postgresql.insert`` or ``sqlite.insert``: an INSERT that takes ``on_conflict_do_nothing``.
InsertOnConflict = Callable[[Table], postgresql.Insert | sqlite.Insert]


async def add_keyed(
    conn: AsyncConnection,
    task_rows: Sequence[Row],
    *,
    key: str,
    request_hash: str,
    now: ColumnElement[datetime],
    insert_on_conflict: InsertOnConflict,
) -> tuple[str, list[UUID]] | None:
    """Store ``key`` and ``task_rows`` in the caller's transaction, or, when ``key`` is known,
    nothing: then return its request hash and task ids.

    ``INSERT … ON CONFLICT DO NOTHING`` on the key comes first: a twin request racing this one
    blocks on the uncommitted key row (PostgreSQL) or on the write lock (SQLite), then finds
    the committed key and replays it.
    """
    ids = [str(row.id) for row in task_rows]
    values = {"key": key, "request_hash": request_hash, "task_ids": ids, "created_at": now}
    claim_key = (
        insert_on_conflict(idempotency_keys)
        .values(values)
        .on_conflict_do_nothing(index_elements=[idempotency_keys.c.key])
        .returning(idempotency_keys.c.key)
    )
    for _ in range(_KEY_TRIES):
        if await conn.scalar(claim_key) is not None:
            if task_rows:
                await conn.execute(insert(tasks), [columns(row) for row in task_rows])
            return None
        found = await known_key(conn, key)
        if found is not None:
            return found
    raise StaleTask(f"idempotency key {key!r} kept changing; try again")


async def known_key(conn: AsyncConnection, key: str) -> tuple[str, list[UUID]] | None:
    """The request hash and task ids stored with ``key``; None when it is not stored."""
    known = select(idempotency_keys.c.request_hash, idempotency_keys.c.task_ids).where(
        idempotency_keys.c.key == key
    )
    found = (await conn.execute(known)).first()
    return None if found is None else (found.request_hash, [UUID(i) for i in found.task_ids])


async def prune_keys(conn: AsyncConnection, older_than: datetime) -> int:
    stmt = delete(idempotency_keys).where(idempotency_keys.c.created_at < older_than)
    return (await conn.execute(stmt)).rowcount


def _to_attempt(row: RowMapping) -> Attempt:
    outcome = row["outcome"]
    return Attempt(
        task_id=row["task_id"],
        number=row["attempt"],
        worker_id=row["worker_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=None if outcome is None else AttemptOutcome(outcome),
        error=task_error(row["error"]),
    )
