"""Tasks added on a caller's own connection, in the caller's own transaction (PostgreSQL).

The rows go in with the caller's business writes: they exist if and only if that transaction
commits. ``pg_notify`` in the same transaction is delivered only on commit, so the processes
listening (``notifications.EnqueuedListener``) dispatch the tasks at once; a notification that
is lost (no listener, a dropped connection) leaves the task to the sweep's reconciler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from taskflow.adapters.sql import postgres, rows
from taskflow.adapters.sql.dialect import PostgresDialect
from taskflow.domain.errors import DuplicateTask
from taskflow.domain.model import Task

#: The channel on which enqueued task ids are announced, comma-separated, on commit.
CHANNEL = "taskflow_enqueued"

# Through SQLAlchemy the statement must take named parameters, and stay inside the transaction
# SQLAlchemy began (or is about to begin) on that connection.
_INSERT = text(postgres.INSERT_SQL.replace("$1::json)", "CAST(:rows AS json))"))
if ":rows" not in str(_INSERT):  # the hot statement's text changed: say so at import, not later
    raise RuntimeError("postgres.INSERT_SQL no longer reads its rows from $1::json")
_NOTIFY = text("SELECT pg_notify(:channel, :ids)")
# A task's completion-webhook callback (decision 23), open from the start.
_CALLBACK_SQL = (
    "INSERT INTO callbacks (task_id, url, next_attempt_at, tries, attempts) "
    "VALUES ($1, $2, $3, 0, 0)"
)
_CALLBACK = text(_CALLBACK_SQL.replace("$1", ":task_id").replace("$2", ":url").replace("$3", ":at"))

Connection: TypeAlias = "asyncpg.Connection[Any] | AsyncConnection"


async def add_in_transaction(
    conn: Connection, tasks: Sequence[Task], callbacks: Mapping[UUID, str] | None = None
) -> None:
    """Insert ``tasks`` on ``conn``, with the ``callbacks`` (task id → callback URL) of those
    that have one, and announce them on commit; DuplicateTask on a known id.

    A payload or metadata holding U+0000 raises ``UnstorableValue`` before anything is sent.
    """
    document = rows.encode([rows.new_row(task) for task in tasks])
    ids = ",".join(str(task.id) for task in tasks)
    created = {task.id: task.created_at for task in tasks}
    try:
        if isinstance(conn, AsyncConnection):
            await conn.execute(_INSERT, {"rows": document})
            for task_id, url in (callbacks or {}).items():
                await conn.execute(
                    _CALLBACK, {"task_id": task_id, "url": url, "at": created[task_id]}
                )
            await conn.execute(_NOTIFY, {"channel": CHANNEL, "ids": ids})
        else:
            await conn.execute(postgres.INSERT_SQL, document)
            for task_id, url in (callbacks or {}).items():
                await conn.execute(_CALLBACK_SQL, task_id, url, created[task_id])
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, ids)
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateTask() from exc
    except sa_exc.IntegrityError as exc:  # the same, wrapped by SQLAlchemy
        if PostgresDialect.is_unique_violation(exc):
            raise DuplicateTask() from exc
        raise
