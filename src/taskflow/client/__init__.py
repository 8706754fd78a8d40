"""The clients of taskflow's HTTP API: :class:`Client` and :class:`AsyncClient`.

They return msgspec Structs (:class:`Task`, :class:`Attempt`, :class:`TaskPage`, …) and raise
one :class:`ApiError` subclass per kind of problem. See docs/api.md, "Python API → Client".

The modules: ``answers`` (the Structs), ``errors`` (the exceptions), ``calls`` (each operation
as a request and a way to read its answer), ``exchange`` (retries and polling, without I/O),
``settings`` (URL, key), and the two clients, ``sync`` and ``asynchronous``.
"""

from taskflow.client.answers import (
    Attempt,
    AttemptError,
    AttemptOutcome,
    ChangeAction,
    Deliveries,
    Delivery,
    History,
    Progress,
    RetriedTasks,
    Schedule,
    Task,
    TaskChange,
    TaskCount,
    TaskError,
    TaskPage,
    TaskStatus,
)
from taskflow.client.asynchronous import AsyncClient
from taskflow.client.calls import (
    Payload,
    RetrySelection,
    Submission,
    SubmitOptions,
    TaskFilters,
    new_idempotency_key,
)
from taskflow.client.errors import (
    ApiError,
    Conflict,
    FieldError,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidSubmission,
    NotFound,
    PayloadTooLarge,
    Problem,
    QuotaExceeded,
    Unavailable,
)
from taskflow.client.fleet import Queue, QueueLimits, QueueThroughput, Worker
from taskflow.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Attempt",
    "AttemptError",
    "AttemptOutcome",
    "ChangeAction",
    "Client",
    "Conflict",
    "Deliveries",
    "Delivery",
    "FieldError",
    "History",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "InvalidSubmission",
    "NotFound",
    "Payload",
    "PayloadTooLarge",
    "Problem",
    "Progress",
    "Queue",
    "QueueLimits",
    "QueueThroughput",
    "QuotaExceeded",
    "RetriedTasks",
    "RetrySelection",
    "Schedule",
    "Submission",
    "SubmitOptions",
    "Task",
    "TaskChange",
    "TaskCount",
    "TaskError",
    "TaskFilters",
    "TaskPage",
    "TaskStatus",
    "Unavailable",
    "Worker",
    "new_idempotency_key",
]
