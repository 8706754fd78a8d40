"""``taskflow.enqueue``: submit a task inside your own PostgreSQL transaction.

The task is written on your connection, with your business writes, so it exists if and only if
your transaction commits (no task for an order that was rolled back, and no order without its
task). It is checked against your Registry like any submission, and dispatched as soon as the
transaction commits: the taskflow processes hear of it through PostgreSQL's NOTIFY, and their
sweep dispatches it anyway should that notice be lost.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from taskflow.adapters.clock import SystemClock, uuid7
from taskflow.adapters.sql.transactional import Connection, add_in_transaction
from taskflow.config import Settings
from taskflow.domain.model import Task
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import SubmitTask, TaskBuilder
from taskflow.registry import Registry


async def enqueue(
    conn: Connection,
    type: str,
    payload: Mapping[str, Any] | None = None,
    *,
    registry: Registry,
    queue: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
    delay_seconds: float | None = None,
    run_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Task:
    """Add a task on ``conn`` (an asyncpg connection, or a SQLAlchemy ``AsyncConnection`` on
    asyncpg), in its current transaction; returns the task as stored.

    ``registry`` is the one your workers run (``TASKFLOW_TASKS``): the type must be in it and
    the payload must match its schema, else ``InvalidSubmission`` (or one of its kinds) is
    raised and nothing is written. Backoff defaults come from ``TASKFLOW_RETRY_BACKOFF_*``.
    """
    command = SubmitTask(
        type=type,
        payload=payload if payload is not None else {},
        queue=queue,
        priority=priority,
        max_retries=max_retries,
        timeout_seconds=timeout_seconds,
        delay_seconds=delay_seconds,
        run_at=run_at,
        metadata=metadata,
    )
    builder = TaskBuilder(types=registry, new_id=uuid7, retry_policy=_deployment_policy())
    task = builder.build(command, SystemClock().now(), None)
    await add_in_transaction(conn, [task])
    return task


@functools.cache
def _deployment_policy() -> RetryPolicy:
    settings = Settings.from_env()
    return RetryPolicy(settings.retry_backoff_base, settings.retry_backoff_max)
