"""``Client``: the synchronous client of the HTTP API (docs/api.md, "Python API → Client")."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, Unpack

import httpx

from taskflow.client import calls
from taskflow.client.answers import (
    Attempt,
    Deliveries,
    History,
    RetriedTasks,
    Schedule,
    Task,
    TaskCount,
    TaskPage,
)
from taskflow.client.exchange import Outcome, Pause, Step, Steps, exchange, waiting
from taskflow.client.fleet import Queue, Worker
from taskflow.client.settings import Connection

T = TypeVar("T")


class Client:
    """Submit tasks and follow them, over HTTP.

    >>> with Client("http://127.0.0.1:8000") as tf:
    ...     task = tf.submit("debug.echo", {"hello": "world"})
    ...     done = tf.wait(task.id)

    ``base_url`` defaults to ``TASKFLOW_API_URL``, else ``http://127.0.0.1:8000``; ``api_key``
    to ``TASKFLOW_API_KEY`` (sent as ``Authorization: Bearer …``). ``actor`` names who asks
    (``Taskflow-Actor``), recorded with each retry. ``timeout`` is per request.
    A 503, or a connection that broke where sending again is safe, is tried again up to
    ``retries`` times, after the ``Retry-After`` the API asked for (at most 30 s).
    ``transport``, ``sleep`` and ``clock`` are for tests: an ``httpx.MockTransport``, and a
    sleep and a clock that need not wait for real time.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        actor: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        connection = Connection.of(
            base_url, api_key=api_key, actor=actor, retries=retries, clock=clock
        )
        self._http = httpx.Client(transport=transport, **connection.http_options(timeout))
        self._connection = connection
        self._sleep = sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def submit(
        self,
        type: str,
        payload: calls.Payload | None = None,
        **options: Unpack[calls.SubmitOptions],
    ) -> Task:
        """Submit one task (``POST /api/tasks``); returns it, PENDING."""
        return self._call(calls.submit(type, payload, options))

    def submit_many(
        self,
        submissions: Iterable[calls.Submission | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Task]:
        """Submit 1 to 1000 tasks, all or none (``POST /api/tasks/batch``), in this order."""
        return self._call(calls.submit_many(submissions, idempotency_key))

    def get(self, task_id: calls.TaskId) -> Task:
        """The task as it is now."""
        return self._call(calls.get(task_id))

    def attempts(self, task_id: calls.TaskId) -> list[Attempt]:
        """The task's attempts, oldest first."""
        return self._call(calls.attempts(task_id))

    def deliveries(self, task_id: calls.TaskId) -> Deliveries:
        """The task's callback URL and its completion-webhook deliveries, oldest first."""
        return self._call(calls.deliveries(task_id))

    def history(self, task_id: calls.TaskId) -> History:
        """The task's attempts and the changes people made to it (its retries)."""
        return self._call(calls.history(task_id))

    def wait(
        self,
        task_id: calls.TaskId,
        *,
        timeout: float = 60.0,
        interval: float = 0.1,
        max_interval: float = 2.0,
    ) -> Task:
        """Poll until the task is SUCCESS, FAILED or CANCELLED, and return it; the pauses grow
        from ``interval`` to ``max_interval``. ``TimeoutError`` after ``timeout`` seconds."""
        steps = waiting(task_id, self._connection, timeout, (interval, max_interval))
        return self._run(steps)

    def cancel(self, task_id: calls.TaskId) -> Task:
        """Cancel the task: CANCELLED at once if PENDING, else ``cancel_requested``."""
        return self._call(calls.cancel(task_id))

    def retry(self, task_id: calls.TaskId, payload: calls.Payload | None = None) -> Task:
        """Run a FAILED or CANCELLED task again, with a new payload if one is given."""
        return self._call(calls.retry(task_id, payload))

    def retry_many(self, **selection: Unpack[calls.RetrySelection]) -> RetriedTasks:
        """Run again the FAILED or CANCELLED tasks that the filters select."""
        return self._call(calls.retry_many(selection))

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[calls.TaskFilters],
    ) -> TaskPage:
        """One page of tasks, newest first; give ``next_cursor`` back as ``cursor``."""
        return self._call(calls.list_tasks(filters, limit=limit, cursor=cursor))

    def pages(
        self, *, limit: int | None = None, **filters: Unpack[calls.TaskFilters]
    ) -> Iterator[TaskPage]:
        """Every page of tasks that fit the filters, newest first, fetched as you iterate."""
        cursor: str | None = None
        while True:
            page = self.list(limit=limit, cursor=cursor, **filters)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_tasks(
        self, *, limit: int | None = None, **filters: Unpack[calls.TaskFilters]
    ) -> Iterator[Task]:
        """Every task that fits the filters, newest first, a page of ``limit`` at a time."""
        for page in self.pages(limit=limit, **filters):
            yield from page.items

    def stats(self) -> builtins.list[TaskCount]:
        """How many tasks there are per queue, type and status."""
        return self._call(calls.stats())

    def schedules(self) -> builtins.list[Schedule]:
        """The periodic tasks of the API's Registry, by name, with their last and next tick."""
        return self._call(calls.schedules())

    def pause_schedule(self, name: str) -> Schedule:
        """Enqueue no tick of schedule ``name`` until it is resumed (``NotFound`` if unknown)."""
        return self._call(calls.pause_schedule(name, paused=True))

    def resume_schedule(self, name: str) -> Schedule:
        """Enqueue schedule ``name``'s ticks again from now; those missed are not caught up."""
        return self._call(calls.pause_schedule(name, paused=False))

    def workers(self) -> builtins.list[Worker]:
        """The live workers, by id: their queues, what they run, their last heartbeat."""
        return self._call(calls.workers())

    def queues(self) -> builtins.list[Queue]:
        """Every queue in use, by name: depth, oldest ready task, throughput, consumers."""
        return self._call(calls.queues())

    def pause_queue(self, name: str) -> Queue:
        """Start no task of queue ``name`` until it is resumed; submissions are still taken."""
        return self._call(calls.pause_queue(name, paused=True))

    def resume_queue(self, name: str) -> Queue:
        """Start queue ``name``'s tasks again."""
        return self._call(calls.pause_queue(name, paused=False))

    def _call(self, call: calls.Call[T]) -> T:
        return self._run(exchange(call, self._connection.retries))

    def _run(self, steps: Steps[T]) -> T:
        outcome: Outcome = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as finished:
                result: T = finished.value
                return result
            outcome = self._perform(step)

    def _perform(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            self._sleep(step.seconds)
            return None
        call = step.call
        try:
            return self._http.request(
                call.method, call.path, params=call.params, content=call.body, headers=call.headers
            )
        except httpx.TransportError as exc:
            return exc
