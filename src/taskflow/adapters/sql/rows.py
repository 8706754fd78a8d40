"""Task rows: a domain Task to the columns of ``tasks`` and back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping

from taskflow.domain.model import Lease, Progress, Task, TaskError, TaskStatus
from taskflow.domain.retry import RetryPolicy


def to_row(task: Task) -> dict[str, Any]:
    lease = task.lease
    progress = task.progress
    error = task.error
    return {
        "id": task.id,
        "type": task.type,
        "payload": dict(task.payload),
        "status": task.status.value,
        "queue": task.queue,
        "priority": task.priority,
        "attempts": task.attempts,
        "retry_count": task.retry_count,
        "max_retries": task.max_retries,
        "timeout_seconds": task.timeout_seconds,
        "run_at": task.run_at,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "updated_at": task.updated_at,
        "cancel_requested": task.cancel_requested,
        "progress": None if progress is None else _progress_json(progress),
        "result": task.result,
        "error": None if error is None else {"type": error.type, "message": error.message},
        "metadata": dict(task.metadata),
        "idempotency_key": task.idempotency_key,
        "version": task.version,
        "lease_token": None if lease is None else lease.token,
        "lease_worker_id": None if lease is None else lease.worker_id,
        "lease_expires_at": None if lease is None else lease.expires_at,
        "backoff_base": task.retry_policy.base,
        "backoff_max": task.retry_policy.max,
    }


def _progress_json(progress: Progress) -> dict[str, Any]:
    return {"fraction": progress.fraction, "message": progress.message}


def to_task(row: RowMapping) -> Task:
    progress, error = row["progress"], row["error"]
    return Task(
        id=row["id"],
        type=row["type"],
        payload=row["payload"],
        status=TaskStatus(row["status"]),
        queue=row["queue"],
        priority=row["priority"],
        attempts=row["attempts"],
        retry_count=row["retry_count"],
        max_retries=row["max_retries"],
        timeout_seconds=_float_or_none(row["timeout_seconds"]),
        run_at=row["run_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        cancel_requested=row["cancel_requested"],
        progress=None if progress is None else Progress(progress["fraction"], progress["message"]),
        result=row["result"],
        error=None if error is None else TaskError(error["type"], error["message"]),
        metadata=row["metadata"],
        idempotency_key=row["idempotency_key"],
        version=row["version"],
        lease=_lease(row),
        retry_policy=RetryPolicy(float(row["backoff_base"]), float(row["backoff_max"])),
    )


def _float_or_none(value: float | None) -> float | None:
    # SQLite's RETURNING hands back a whole REAL as an int; callers expect a float.
    return None if value is None else float(value)


def _lease(row: RowMapping) -> Lease | None:
    if row["lease_token"] is None:
        return None
    return Lease(row["lease_token"], row["lease_worker_id"], row["lease_expires_at"])
