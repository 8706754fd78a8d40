"""Turning a submission into a new Task: the one place a submission is checked."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from taskflow.domain.errors import InvalidSubmission, UnknownTaskType
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    queue_name_problem,
    timeout_problem,
    type_name_problem,
    type_options_problem,
)
from taskflow.domain.model import Task
from taskflow.domain.ports import TaskType, TaskTypes, TraceContext
from taskflow.domain.retry import RetryPolicy


class Submission(Protocol):
    """What a request to run a task says. ``None`` means: the type's setting, else the default.

    The one shape the service accepts, and ``TaskService._build`` (with ``domain.limits``) is
    the one place a submission is validated. Two classes have this shape, each for a reason:
    ``SubmitTask`` for Python callers and tests, and the HTTP schema's ``SubmitTaskIn``, which
    msgspec decodes straight from the body (and which documents the limits in the OpenAPI
    schema) and which the API hands over as it is, sparing an object per task on the hot path.
    A task type's defaults (the Registry's ``TaskDefinition``) are a ``TaskType``, not a
    submission: they fill in what a submission leaves as ``None``.
    """

    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def max_retries(self) -> int | None: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def delay_seconds(self) -> float | None: ...
    @property
    def run_at(self) -> datetime | None: ...
    @property
    def metadata(self) -> Mapping[str, Any] | None: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def callback_url(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitTask:
    """A request to run a task, made in Python (a ``Submission``)."""

    type: str
    payload: Mapping[str, Any]
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None


class TaskBuilder:
    """Builds new tasks from submissions, checked against the limits and the task types.

    Used by ``TaskService`` and by an enqueue inside a caller's own transaction alike. With
    ``trace`` (tracing on), each task carries the traceparent of the span that built it.
    """

    def __init__(
        self,
        *,
        types: TaskTypes,
        new_id: Callable[[], UUID],
        retry_policy: RetryPolicy,
        trace: TraceContext | None = None,
    ) -> None:
        self._types = types
        self._trace = trace
        self._new_id = new_id
        self._policy = retry_policy
        self._checked_types: dict[str, TaskType] = {}
        self._policies: dict[str, RetryPolicy] = {}

    def build_all(
        self,
        commands: Sequence[Submission],
        now: datetime,
        key: str | None = None,
        *,
        batch: bool,
        tenant: str = DEFAULT_TENANT,
    ) -> list[Task]:
        """The tasks of ``commands``, all carrying ``key`` (else each its own key)."""
        trace = self._traceparent()  # one request, one span: asked once for the batch
        if not batch:
            return [
                self._build(command, now, key or command.idempotency_key, trace, tenant)
                for command in commands
            ]
        tasks = []
        for index, command in enumerate(commands):
            try:
                key_of = key or command.idempotency_key
                tasks.append(self._build(command, now, key_of, trace, tenant))
            except InvalidSubmission as exc:  # name the submission at fault within the batch
                raise exc.under(f"tasks[{index}]") from None
        return tasks

    def build(
        self, command: Submission, now: datetime, key: str | None, tenant: str = DEFAULT_TENANT
    ) -> Task:
        return self._build(command, now, key, self._traceparent(), tenant)

    def _traceparent(self) -> str | None:
        return None if self._trace is None else self._trace.current()

    def _build(
        self,
        command: Submission,
        now: datetime,
        key: str | None,
        traceparent: str | None,
        tenant: str,
    ) -> Task:
        _check_limits(command)
        kind = self._known_type(command.type)
        kind.validate(command.payload)
        return Task.new(
            id=self._new_id(),
            type=command.type,
            payload=command.payload,
            now=now,
            queue=_queue_name(command.queue or kind.queue or DEFAULT_QUEUE),
            priority=_pick(command.priority, kind.priority, DEFAULT_PRIORITY),
            max_retries=_pick(command.max_retries, kind.max_retries, DEFAULT_MAX_RETRIES),
            timeout_seconds=_timeout(command.timeout_seconds, kind.timeout_seconds),
            run_at=_run_at(command, now),
            metadata=command.metadata,
            idempotency_key=key,
            retry_policy=self._policies[kind.name],
            traceparent=traceparent,
            tenant=tenant,
        )

    def check_payload(self, type_name: str, payload: Mapping[str, Any]) -> None:
        """``payload`` as a submission of ``type_name`` would be checked: InvalidPayload."""
        kind = self._types.get(type_name)
        if kind is None:
            raise UnknownTaskType(
                f"task type {type_name!r} is not registered here, so a new payload for it "
                "cannot be checked",
                field="payload",
            )
        kind.validate(payload)

    def _known_type(self, name: str) -> TaskType:
        kind = self._checked_types.get(name)
        if kind is not None:
            return kind
        problem = type_name_problem(name)
        if problem:
            raise InvalidSubmission(problem, field="type")
        kind = self._types.get(name)
        if kind is None:
            raise UnknownTaskType(f"unknown task type {name!r}")
        # Only registered names are kept, so the cache is as large as the catalogue at most.
        self._checked_types[name] = kind
        self._policies[name] = self._policy.with_overrides(
            base=kind.backoff_base, max=kind.backoff_max
        )
        return kind


def _pick(requested: int | None, default: int | None, fallback: int) -> int:
    if requested is not None:
        return requested
    return fallback if default is None else default


@functools.lru_cache(maxsize=256)
def _queue_name(name: str) -> str:
    problem = queue_name_problem(name)
    if problem:
        raise InvalidSubmission(problem, field="queue")
    return name


def _timeout(requested: float | None, default: float | None) -> float | None:
    value = requested if requested is not None else default
    problem = None if value is None else timeout_problem(value)
    if problem:
        raise InvalidSubmission(problem, field="timeout_seconds")
    return value


def _run_at(command: Submission, now: datetime) -> datetime:
    if command.run_at is not None and command.delay_seconds is not None:
        raise InvalidSubmission("give delay_seconds or run_at, not both", field="run_at")
    if command.delay_seconds is not None:
        if command.delay_seconds < 0:
            raise InvalidSubmission("delay_seconds cannot be negative", field="delay_seconds")
        try:
            return now + timedelta(seconds=command.delay_seconds)
        except OverflowError:  # past year 9999, or more seconds than a timedelta holds
            problem = f"delay_seconds {command.delay_seconds:g} lies beyond the year 9999"
            raise InvalidSubmission(problem, field="delay_seconds") from None
    if command.run_at is not None:
        if command.run_at.tzinfo is None:
            raise InvalidSubmission("run_at must carry a time zone", field="run_at")
        return max(command.run_at, now)
    return now


def _check_limits(command: Submission) -> None:
    # Most submissions leave these to the type: no call at all then, on the hot path.
    if command.priority is None and command.max_retries is None:
        return
    refused = type_options_problem(priority=command.priority, max_retries=command.max_retries)
    if refused:
        raise InvalidSubmission(refused[1], field=refused[0])
