"""Each API operation as a :class:`Call`: the request to send and how to read its answer.

The two clients build the same calls here and differ only in how they send them, so a route,
a body or an answer's type is written once (docs/api.md, "HTTP API").
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar
from uuid import UUID

import msgspec

from taskflow.client.answers import (
    Attempt,
    CountList,
    Deliveries,
    History,
    RetriedTasks,
    Schedule,
    ScheduleList,
    Task,
    TaskCount,
    TaskList,
    TaskPage,
)
from taskflow.client.errors import InvalidRequest, InvalidSubmission
from taskflow.client.fleet import Queue, QueueList, Worker, WorkerList

T = TypeVar("T")
#: A payload: a JSON object as a mapping, or a msgspec Struct (sent as its JSON object).
Payload = Mapping[str, Any] | msgspec.Struct
TaskId = UUID | str


def new_idempotency_key() -> str:
    """A fresh random ``Idempotency-Key``: give the same one to every try of one submission."""
    return str(uuid.uuid4())


class SubmitOptions(TypedDict, total=False):
    """The optional fields of a submission (None: the type's default), and the
    ``Idempotency-Key`` to send it with."""

    queue: str | None
    priority: int | None
    max_retries: int | None
    timeout_seconds: float | None
    metadata: Mapping[str, Any] | None
    delay_seconds: float | None
    run_at: datetime | str | None
    callback_url: str | None
    idempotency_key: str | None


class TaskFilters(TypedDict, total=False):
    """The filters of ``GET /api/tasks``; timestamps need a time zone."""

    status: Sequence[str]
    type: str
    queue: str
    created_after: datetime | str
    created_before: datetime | str
    metadata: Mapping[str, str]


class RetrySelection(TypedDict, total=False):
    """Which FAILED or CANCELLED tasks a bulk retry sends back to PENDING."""

    status: Sequence[str]
    type: str
    queue: str
    created_after: datetime | str
    created_before: datetime | str
    metadata: Mapping[str, str]
    limit: int


class Submission(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One task to submit; the fields of ``POST /api/tasks`` (None: the type's default)."""

    type: str
    payload: Any = msgspec.field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    metadata: Mapping[str, Any] | None = None
    delay_seconds: float | None = None
    run_at: datetime | str | None = None
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request, and how its answer is read."""

    method: str
    path: str
    read: Callable[[bytes], T]
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    idempotency_key: str | None = None
    #: The class a 400 answer raises: the request's own kind of refusal.
    refused: type[InvalidRequest] = InvalidRequest
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        headers = {} if self.body is None else {"Content-Type": "application/json"}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        object.__setattr__(self, "headers", headers)

    @property
    def resendable(self) -> bool:
        """Safe to send again after a connection broke mid-way: it changes nothing twice."""
        return self.method == "GET" or self.idempotency_key is not None


def _reader(answer: type[T]) -> Callable[[bytes], T]:
    decoder = msgspec.json.Decoder(answer)
    return decoder.decode


_task = _reader(Task)
_tasks = _reader(TaskList)
_history = _reader(History)
_counts = _reader(CountList)
_schedule = _reader(Schedule)
_schedules = _reader(ScheduleList)
_page = _reader(TaskPage)
_retried = _reader(RetriedTasks)
_deliveries = _reader(Deliveries)
_queue = _reader(Queue)
_queues = _reader(QueueList)
_workers = _reader(WorkerList)
_encode = msgspec.json.Encoder().encode


def submit(type: str, payload: Payload | None, options: SubmitOptions) -> Call[Task]:
    fields = {k: v for k, v in options.items() if k != "idempotency_key" and v is not None}
    body = {"type": type, "payload": _object(payload), **fields}
    return Call(
        "POST",
        "/api/tasks",
        _task,
        body=_encode(body),
        idempotency_key=options.get("idempotency_key"),
        refused=InvalidSubmission,
    )


def submit_many(
    submissions: Iterable[Submission | Mapping[str, Any]], idempotency_key: str | None
) -> Call[list[Task]]:
    return Call(
        "POST",
        "/api/tasks/batch",
        lambda raw: _tasks(raw).tasks,
        body=_encode({"tasks": list(submissions)}),
        idempotency_key=idempotency_key,
        refused=InvalidSubmission,
    )


def get(task_id: TaskId) -> Call[Task]:
    return Call("GET", f"/api/tasks/{_segment(task_id)}", _task)


def history(task_id: TaskId) -> Call[History]:
    return Call("GET", f"/api/tasks/{_segment(task_id)}/attempts", _history)


def attempts(task_id: TaskId) -> Call[list[Attempt]]:
    return Call("GET", f"/api/tasks/{_segment(task_id)}/attempts", lambda raw: _history(raw).items)


def deliveries(task_id: TaskId) -> Call[Deliveries]:
    return Call("GET", f"/api/tasks/{_segment(task_id)}/deliveries", _deliveries)


def cancel(task_id: TaskId) -> Call[Task]:
    return Call("POST", f"/api/tasks/{_segment(task_id)}/cancel", _task)


def retry(task_id: TaskId, payload: Payload | None) -> Call[Task]:
    body = None if payload is None else _encode({"payload": _object(payload)})
    return Call(
        "POST", f"/api/tasks/{_segment(task_id)}/retry", _task, body=body, refused=InvalidSubmission
    )


def retry_many(selection: RetrySelection) -> Call[RetriedTasks]:
    # Only the filters given: no statuses named is the API's default (both), no metadata none.
    given = {name: _text(value) for name, value in selection.items() if _given(value)}
    return Call("POST", "/api/tasks/retry", _retried, body=_encode(given))


def list_tasks(filters: TaskFilters, *, limit: int | None, cursor: str | None) -> Call[TaskPage]:
    params = [("status", str(status)) for status in filters.get("status", ())]
    named = {
        "type": filters.get("type"),
        "queue": filters.get("queue"),
        "created_after": filters.get("created_after"),
        "created_before": filters.get("created_before"),
        "limit": limit,
        "cursor": cursor,
    }
    params += [(name, str(_text(value))) for name, value in named.items() if value is not None]
    metadata = filters.get("metadata") or {}
    params += [(f"metadata.{key}", value) for key, value in metadata.items()]
    return Call("GET", "/api/tasks", _page, params=tuple(params))


def stats() -> Call[list[TaskCount]]:
    return Call("GET", "/api/tasks/stats", lambda raw: _counts(raw).items)


def schedules() -> Call[list[Schedule]]:
    return Call("GET", "/api/schedules", lambda raw: _schedules(raw).items)


def pause_schedule(name: str, *, paused: bool) -> Call[Schedule]:
    action = "pause" if paused else "resume"
    return Call("POST", f"/api/schedules/{_segment(name)}/{action}", _schedule)


def workers() -> Call[list[Worker]]:
    return Call("GET", "/api/workers", lambda raw: _workers(raw).workers)


def queues() -> Call[list[Queue]]:
    return Call("GET", "/api/queues", lambda raw: _queues(raw).queues)


def pause_queue(name: str, *, paused: bool) -> Call[Queue]:
    action = "pause" if paused else "resume"
    return Call("POST", f"/api/queues/{_segment(name)}/{action}", _queue)


def _segment(task_id: TaskId) -> str:
    # An id is one path segment: text such as "../types" must not reach another route.
    return urllib.parse.quote(str(task_id), safe="")


def _given(value: object) -> bool:
    if isinstance(value, Mapping | list | tuple):
        return bool(value)
    return value is not None


def _object(payload: Payload | None) -> Any:
    if payload is None:
        return {}
    return payload if isinstance(payload, msgspec.Struct) else dict(payload)


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
