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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from taskflow.adapters.clock import SystemClock, uuid7
from taskflow.adapters.otel import open_tracing
from taskflow.adapters.sql.transactional import Connection, add_in_transaction
from taskflow.config import Settings
from taskflow.domain.callbacks import CallbackHosts, callback_url_problem
from taskflow.domain.errors import InvalidSubmission, PayloadTooLarge
from taskflow.domain.keys import DEFAULT_TENANT, tenant_problem
from taskflow.domain.limits import metadata_size_problem, payload_size_problem
from taskflow.domain.model import Task
from taskflow.domain.ports import TraceContext
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
    callback_url: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> Task:
    """Add a task on ``conn`` (an asyncpg connection, or a SQLAlchemy ``AsyncConnection`` on
    asyncpg), in its current transaction; returns the task as stored.

    ``registry`` is the one your workers run (``TASKFLOW_TASKS``): the type must be in it and
    the payload must match its schema, else ``InvalidSubmission`` (or one of its kinds) is
    raised and nothing is written. Backoff defaults come from ``TASKFLOW_RETRY_BACKOFF_*``;
    a ``callback_url`` is checked against ``TASKFLOW_WEBHOOK_SECRET`` and
    ``TASKFLOW_CALLBACK_ALLOWED_HOSTS``, as the API checks it. When your application has an
    OpenTelemetry tracer provider (and ``taskflow[otel]``), the task joins your current span's
    trace, unless TASKFLOW_TRACING=off. ``tenant``: whose task it is (docs/security.md,
    "Tenants"); only that tenant's keys will see it.
    """
    problem = tenant_problem(tenant)
    if problem:
        raise InvalidSubmission(problem, field="tenant")
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
        callback_url=callback_url,
    )
    _check_sizes(command)
    if callback_url is not None:
        problem = callback_url_problem(callback_url, _deployment().callback_hosts)
        if problem:
            raise InvalidSubmission(problem, field="callback_url")
    deployment = _deployment()
    builder = TaskBuilder(
        types=registry, new_id=uuid7, retry_policy=deployment.policy, trace=deployment.trace
    )
    task = builder.build(command, SystemClock().now(), None, tenant)
    callbacks = {} if callback_url is None else {task.id: callback_url}
    await add_in_transaction(conn, [task], callbacks)
    return task


@dataclass(frozen=True, slots=True)
class _Deployment:
    policy: RetryPolicy
    max_payload_bytes: int
    callback_hosts: CallbackHosts | None  # None: no TASKFLOW_WEBHOOK_SECRET, no callbacks
    trace: TraceContext | None  # None: tracing is off in this application


@functools.cache
def _deployment() -> _Deployment:
    """What the deployment's settings (TASKFLOW_*) say of a new task, read once."""
    settings = Settings.from_env()
    policy = RetryPolicy(settings.retry_backoff_base, settings.retry_backoff_max)
    hosts = settings.callback_allowed_hosts if settings.webhook_secret is not None else None
    # Your application's tracer provider, if it set one: taskflow sets none up in your process.
    trace = open_tracing("off" if settings.tracing == "off" else "auto")
    return _Deployment(policy, settings.max_payload_bytes, hosts, trace)


def _check_sizes(command: SubmitTask) -> None:
    """The limits the API puts on an encoded payload and metadata, put here too."""
    problem = payload_size_problem(
        len(msgspec.json.encode(command.payload)), _deployment().max_payload_bytes
    )
    if problem:
        raise PayloadTooLarge(problem, field="payload")
    if command.metadata is not None:
        problem = metadata_size_problem(len(msgspec.json.encode(command.metadata)))
        if problem:
            raise InvalidSubmission(problem, field="metadata")
