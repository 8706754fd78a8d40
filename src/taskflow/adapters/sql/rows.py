"""Task rows: the one encoding of a domain Task to the columns of ``tasks``, and back.

A ``Row`` holds a task's columns by name; every write starts from one. PostgreSQL gets a batch
of rows as one JSON document (``encode``), which ``json_to_recordset`` unpacks by column
name; SQLite gets each row's columns (``columns``) through SQLAlchemy. Nested values (progress,
error, an attempt's end) are the domain's own dataclasses, which msgspec encodes as the JSON
objects the columns hold, and ``to_task`` reads back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy.engine import RowMapping

from taskflow.domain import unstorable
from taskflow.domain.attempts import AttemptEnd
from taskflow.domain.flow import Popped
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.model import Lease, Progress, Task, TaskError, TaskStatus, assemble
from taskflow.domain.retry import RetryPolicy


class Row(msgspec.Struct, gc=False):
    """A task as the columns of ``tasks``, and, for a save, the attempt it closes.

    A field left UNSET is not written (and not encoded): a save leaves the columns fixed at
    creation alone, so a large payload is not sent again with every change. (``gc=False``: a
    row is in no reference cycle, so the collector need not track the thousands made.)
    """

    # What a transition may change: every write has these.
    id: UUID
    version: int
    status: TaskStatus
    attempts: int
    retry_count: int
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    cancel_requested: bool
    progress: Progress | None
    result: Any
    error: TaskError | None
    lease_token: UUID | None
    lease_worker_id: str | None
    lease_expires_at: datetime | None
    # Fixed when the task is created: only an insert has these.
    type: str | UnsetType = UNSET
    payload: Mapping[str, Any] | UnsetType = UNSET
    queue: str | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    max_retries: int | UnsetType = UNSET
    timeout_seconds: float | UnsetType | None = UNSET
    created_at: datetime | UnsetType = UNSET
    metadata: Mapping[str, Any] | UnsetType = UNSET
    idempotency_key: str | UnsetType | None = UNSET
    backoff_base: float | UnsetType = UNSET
    backoff_max: float | UnsetType = UNSET
    traceparent: str | UnsetType | None = UNSET
    tenant: str | UnsetType | None = UNSET  # NULL: the default tenant
    # Not a column: the end of the attempt a save closes with its change.
    closing: AttemptEnd | UnsetType = UNSET


#: The columns only an insert writes.
FIXED: Final = Row.__struct_fields__[Row.__struct_fields__.index("type") : -1]


def changed_row(task: Task, closing: AttemptEnd | None = None) -> Row:
    """The columns a transition may change, and the attempt ``closing`` ends: what a save writes."""
    lease = task.lease
    # Positional arguments, in the order of Row's fields: the cheapest way to build one.
    return Row(
        task.id,
        task.version,
        task.status,
        task.attempts,
        task.retry_count,
        task.run_at,
        task.started_at,
        task.finished_at,
        task.updated_at,
        task.cancel_requested,
        task.progress,
        task.result,
        task.error,
        None if lease is None else lease.token,
        None if lease is None else lease.worker_id,
        None if lease is None else lease.expires_at,
        closing=UNSET if closing is None else closing,
    )


def new_row(task: Task) -> Row:
    """Every column of ``task``: what an insert writes."""
    row = changed_row(task)
    row.type = task.type
    row.payload = task.payload
    row.queue = task.queue
    row.priority = task.priority
    row.max_retries = task.max_retries
    row.timeout_seconds = task.timeout_seconds
    row.created_at = task.created_at
    row.metadata = task.metadata
    row.idempotency_key = task.idempotency_key
    row.backoff_base = task.retry_policy.base
    row.backoff_max = task.retry_policy.max
    row.traceparent = task.traceparent
    row.tenant = stored_tenant(task.tenant)
    return row


def stored_tenant(tenant: str) -> str | None:
    """The ``tenant`` column of a task of ``tenant``: NULL for the default tenant, so a
    deployment without tenants writes nothing more and its partial index stays empty."""
    return None if tenant == DEFAULT_TENANT else tenant


def columns(row: Row) -> dict[str, Any]:
    """The columns ``row`` writes, by name (SQLAlchemy's JSON columns encode the nested ones)."""
    values = msgspec.structs.asdict(row)
    del values["closing"]
    return {name: value for name, value in values.items() if value is not UNSET}


def _mapping_to_dict(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


#: JSON as the store writes it: UUIDs and instants as RFC 4122 and RFC 3339 text, which
#: PostgreSQL reads back exactly; None as null, which ``json_to_recordset`` makes SQL NULL.
encode_json = msgspec.json.Encoder(enc_hook=_mapping_to_dict).encode


def encode(rows: Sequence[Row]) -> str:
    """The rows as one JSON document: an array of objects keyed by column.

    The store cannot keep U+0000 (see ``unstorable``): a payload, metadata or result holding
    it raises ``UnstorableValue`` naming the task and where; in messages it is replaced. The
    values are walked only when the document shows the escape.
    """
    document = encode_json(rows)
    if unstorable.suspect(document) and _refuse_or_clean(rows):
        document = encode_json(rows)
    return document.decode()


_VALUES: Final = ("payload", "metadata", "result")


def _refuse_or_clean(rows: Sequence[Row]) -> bool:
    """Refuse the first row holding U+0000 in a value; True when a message was cleaned."""
    cleaned = False
    for row in rows:
        for name in _VALUES:
            refused = unstorable.refusal(getattr(row, name), name)
            if refused is not None:
                refused.task_id = row.id
                raise refused
        cleaned = _clean_messages(row) or cleaned
    return cleaned


def _clean_messages(row: Row) -> bool:
    progress, error, closing = row.progress, row.error, row.closing
    if progress is not None:
        row.progress = Progress(progress.fraction, unstorable.without_nul(progress.message))
    row.error = _clean_error(error)
    if isinstance(closing, AttemptEnd):
        row.closing = dataclasses.replace(closing, error=_clean_error(closing.error))
    return (row.progress, row.error, row.closing) != (progress, error, closing)


def _clean_error(error: TaskError | None) -> TaskError | None:
    if error is None:
        return None
    trace = None if error.traceback is None else unstorable.without_nul(error.traceback)
    return TaskError(
        unstorable.without_nul(error.type), unstorable.without_nul(error.message), trace
    )


def to_task(row: RowMapping) -> Task:
    progress = row["progress"]
    return assemble(
        {
            "id": row["id"],
            "type": row["type"],
            "payload": row["payload"],
            "status": TaskStatus(row["status"]),
            "queue": row["queue"],
            "priority": row["priority"],
            "attempts": row["attempts"],
            "retry_count": row["retry_count"],
            "max_retries": row["max_retries"],
            "timeout_seconds": _float_or_none(row["timeout_seconds"]),
            "run_at": row["run_at"],
            "created_at": row["created_at"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "updated_at": row["updated_at"],
            "cancel_requested": row["cancel_requested"],
            "progress": None
            if progress is None
            else Progress(progress["fraction"], progress["message"]),
            "result": row["result"],
            "error": task_error(row["error"]),
            "metadata": row["metadata"],
            "idempotency_key": row["idempotency_key"],
            "version": row["version"],
            "lease": _lease(row),
            "retry_policy": RetryPolicy(float(row["backoff_base"]), float(row["backoff_max"])),
            "traceparent": row["traceparent"],
            "tenant": row["tenant"] or DEFAULT_TENANT,
        }
    )


def to_popped(row: RowMapping) -> Popped:
    """A row of ``dialect.POPPED`` columns, and the payload where it was read."""
    return Popped(
        row["id"],
        row["type"],
        row["queue"],
        row["priority"],
        TaskStatus(row["status"]),
        row["attempts"],
        row.get("payload") or {},
    )


def task_error(value: Mapping[str, str | None] | None) -> TaskError | None:
    """The TaskError a JSON column holds (a task's, or an attempt's with its traceback)."""
    if value is None:
        return None
    return TaskError(str(value["type"]), str(value["message"]), value.get("traceback"))


def _float_or_none(value: float | None) -> float | None:
    # SQLite's RETURNING hands back a whole REAL as an int; callers expect a float.
    return None if value is None else float(value)


def _lease(row: RowMapping) -> Lease | None:
    if row["lease_token"] is None:
        return None
    return Lease(row["lease_token"], row["lease_worker_id"], row["lease_expires_at"])
