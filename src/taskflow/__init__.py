"""taskflow: durable background tasks for Python.

Write handlers with :class:`Registry`; submit with :class:`Client` or :class:`AsyncClient`,
over HTTP, or inside your own PostgreSQL transaction with :func:`enqueue`.

The clients' errors are here too (``taskflow.NotFound``, …). ``taskflow.InvalidSubmission`` is
the client's: the API refused a submission. :func:`enqueue` raises the domain's own kind,
``taskflow.domain.errors.InvalidSubmission``, which is not an HTTP answer.
"""

from typing import Any

from taskflow.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidSubmission,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    Submission,
    Task,
    Unavailable,
    new_idempotency_key,
)
from taskflow.handlers import Fail, Retry, TaskContext
from taskflow.registry import DeclaredTask, Registry

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Conflict",
    "DeclaredTask",
    "Fail",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "InvalidSubmission",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "Registry",
    "Retry",
    "Submission",
    "Task",
    "TaskContext",
    "Unavailable",
    "enqueue",
    "new_idempotency_key",
]


def __getattr__(name: str) -> Any:
    # `enqueue` brings the SQL adapter (SQLAlchemy, asyncpg) in: only when it is asked for,
    # so that a producer using the HTTP client alone imports none of it.
    if name == "enqueue":
        from taskflow.transactional import enqueue

        return enqueue
    raise AttributeError(f"module 'taskflow' has no attribute {name!r}")
