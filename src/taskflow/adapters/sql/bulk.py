"""Bulk compare-and-set of many task changes in one PostgreSQL statement (group commit).

The rows travel as one JSON document, unpacked by ``jsonb_to_recordset``; each row is written
only where the stored version is still the one the change was computed from, exactly like a
single save, and its attempt is closed in the same statement. Only the columns a transition
can change are written: id, type, payload, queue, priority, limits, metadata, idempotency key
and retry policy are fixed when a task is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from taskflow.adapters.sql.engine import fetch_raw
from taskflow.domain.attempts import AttemptEnd
from taskflow.domain.model import Task

SaveItem = tuple[Task, AttemptEnd | None]

_encode = msgspec.json.Encoder().encode

# Plain PostgreSQL text, run straight on asyncpg (see sql_engine.fetch_raw): $1 is the rows as
# one JSON document, $2 their ids.
_SAVE_MANY = """
WITH v AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(
    id uuid, expected int, status text, attempts int, retry_count int, run_at timestamptz,
    started_at timestamptz, finished_at timestamptz, updated_at timestamptz,
    cancel_requested boolean, progress jsonb, result jsonb, error jsonb, version int,
    lease_token uuid, lease_worker_id text, lease_expires_at timestamptz,
    attempt int, outcome text, closed_at timestamptz, attempt_error jsonb)
),
saved AS (
  UPDATE tasks AS t SET
    status = v.status, attempts = v.attempts, retry_count = v.retry_count, run_at = v.run_at,
    started_at = v.started_at, finished_at = v.finished_at, updated_at = v.updated_at,
    cancel_requested = v.cancel_requested, progress = v.progress, result = v.result,
    error = v.error, version = v.version, lease_token = v.lease_token,
    lease_worker_id = v.lease_worker_id,
    -- a heartbeat may have renewed the lease since the change was computed: keep the later
    lease_expires_at = CASE
      WHEN t.lease_token = v.lease_token AND t.lease_expires_at > v.lease_expires_at
      THEN t.lease_expires_at ELSE v.lease_expires_at END
  FROM v
  -- the id array lets the planner find the rows by primary key; joining on v alone, it
  -- guesses v's size and may scan the whole table
  WHERE t.id = ANY($2::uuid[]) AND t.id = v.id AND t.version = v.expected
  RETURNING t.id
),
closed AS (
  UPDATE attempts AS a
  SET finished_at = v.closed_at, outcome = v.outcome, error = v.attempt_error
  FROM v JOIN saved ON saved.id = v.id
  WHERE a.task_id = v.id AND a.attempt = v.attempt AND a.finished_at IS NULL
    AND v.outcome IS NOT NULL
)
SELECT id FROM saved
"""


async def save_many(conn: AsyncConnection, items: Sequence[SaveItem]) -> set[UUID]:
    """Write every change whose version still matches; returns the ids written."""
    rows = _encode([_row(task, end) for task, end in items]).decode()
    ids = [task.id for task, _ in items]
    result = await fetch_raw(conn, _SAVE_MANY, [rows, ids])
    return {row[0] for row in result}  # asyncpg's UUIDs equal and hash as uuid.UUID


def _row(task: Task, end: AttemptEnd | None) -> dict[str, Any]:
    lease, progress, error = task.lease, task.progress, task.error
    return {
        "id": str(task.id),
        "expected": task.version - 1,
        "status": task.status.value,
        "attempts": task.attempts,
        "retry_count": task.retry_count,
        "run_at": task.run_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "updated_at": task.updated_at,
        "cancel_requested": task.cancel_requested,
        "progress": None
        if progress is None
        else {"fraction": progress.fraction, "message": progress.message},
        "result": task.result,
        "error": None if error is None else {"type": error.type, "message": error.message},
        "version": task.version,
        "lease_token": None if lease is None else str(lease.token),
        "lease_worker_id": None if lease is None else lease.worker_id,
        "lease_expires_at": None if lease is None else lease.expires_at,
        "attempt": None if end is None else end.attempt,
        "outcome": None if end is None else end.outcome.value,
        "closed_at": None if end is None else end.finished_at,
        "attempt_error": None
        if end is None or end.error is None
        else {
            "type": end.error.type,
            "message": end.error.message,
            "traceback": end.error.traceback,
        },
    }
