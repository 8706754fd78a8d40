"""``AsyncClient``: the asyncio twin of ``Client`` (docs/api.md, "Python API → Client")."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
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


class AsyncClient:
    """Submit tasks and follow them, over HTTP, from asyncio code.

    >>> async with AsyncClient("http://127.0.0.1:8000") as tf:
    ...     task = await tf.submit("debug.echo", {"hello": "world"})
    ...     done = await tf.wait(task.id)

    Its methods are those of :class:`~taskflow.client.Client`, as coroutines (``pages`` and
    ``iter_tasks`` as async iterators), with the same options and errors.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        actor: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        connection = Connection.of(
            base_url, api_key=api_key, actor=actor, retries=retries, clock=clock
        )
        self._http = httpx.AsyncClient(transport=transport, **connection.http_options(timeout))
        self._connection = connection
        self._sleep = sleep

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def submit(
        self,
        type: str,
        payload: calls.Payload | None = None,
        **options: Unpack[calls.SubmitOptions],
    ) -> Task:
        """As ``Client.submit``."""
        return await self._call(calls.submit(type, payload, options))

    async def submit_many(
        self,
        submissions: Iterable[calls.Submission | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Task]:
        """As ``Client.submit_many``."""
        return await self._call(calls.submit_many(submissions, idempotency_key))

    async def get(self, task_id: calls.TaskId) -> Task:
        """As ``Client.get``."""
        return await self._call(calls.get(task_id))

    async def attempts(self, task_id: calls.TaskId) -> list[Attempt]:
        """As ``Client.attempts``."""
        return await self._call(calls.attempts(task_id))

    async def deliveries(self, task_id: calls.TaskId) -> Deliveries:
        """As ``Client.deliveries``."""
        return await self._call(calls.deliveries(task_id))

    async def history(self, task_id: calls.TaskId) -> History:
        """As ``Client.history``."""
        return await self._call(calls.history(task_id))

    async def wait(
        self,
        task_id: calls.TaskId,
        *,
        timeout: float = 60.0,
        interval: float = 0.1,
        max_interval: float = 2.0,
    ) -> Task:
        """As ``Client.wait``."""
        steps = waiting(task_id, self._connection, timeout, (interval, max_interval))
        return await self._run(steps)

    async def cancel(self, task_id: calls.TaskId) -> Task:
        """As ``Client.cancel``."""
        return await self._call(calls.cancel(task_id))

    async def retry(self, task_id: calls.TaskId, payload: calls.Payload | None = None) -> Task:
        """As ``Client.retry``."""
        return await self._call(calls.retry(task_id, payload))

    async def retry_many(self, **selection: Unpack[calls.RetrySelection]) -> RetriedTasks:
        """As ``Client.retry_many``."""
        return await self._call(calls.retry_many(selection))

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[calls.TaskFilters],
    ) -> TaskPage:
        """As ``Client.list``."""
        return await self._call(calls.list_tasks(filters, limit=limit, cursor=cursor))

    async def pages(
        self, *, limit: int | None = None, **filters: Unpack[calls.TaskFilters]
    ) -> AsyncIterator[TaskPage]:
        """As ``Client.pages``."""
        cursor: str | None = None
        while True:
            page = await self.list(limit=limit, cursor=cursor, **filters)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def iter_tasks(
        self, *, limit: int | None = None, **filters: Unpack[calls.TaskFilters]
    ) -> AsyncIterator[Task]:
        """As ``Client.iter_tasks``."""
        async for page in self.pages(limit=limit, **filters):
            for task in page.items:
                yield task

    async def stats(self) -> builtins.list[TaskCount]:
        """As ``Client.stats``."""
        return await self._call(calls.stats())

    async def schedules(self) -> builtins.list[Schedule]:
        """As ``Client.schedules``."""
        return await self._call(calls.schedules())

    async def pause_schedule(self, name: str) -> Schedule:
        """As ``Client.pause_schedule``."""
        return await self._call(calls.pause_schedule(name, paused=True))

    async def resume_schedule(self, name: str) -> Schedule:
        """As ``Client.resume_schedule``."""
        return await self._call(calls.pause_schedule(name, paused=False))

    async def workers(self) -> builtins.list[Worker]:
        """As ``Client.workers``."""
        return await self._call(calls.workers())

    async def queues(self) -> builtins.list[Queue]:
        """As ``Client.queues``."""
        return await self._call(calls.queues())

    async def pause_queue(self, name: str) -> Queue:
        """As ``Client.pause_queue``."""
        return await self._call(calls.pause_queue(name, paused=True))

    async def resume_queue(self, name: str) -> Queue:
        """As ``Client.resume_queue``."""
        return await self._call(calls.pause_queue(name, paused=False))

    async def _call(self, call: calls.Call[T]) -> T:
        return await self._run(exchange(call, self._connection.retries))

    async def _run(self, steps: Steps[T]) -> T:
        outcome: Outcome = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as finished:
                result: T = finished.value
                return result
            outcome = await self._perform(step)

    async def _perform(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            await self._sleep(step.seconds)
            return None
        call = step.call
        try:
            return await self._http.request(
                call.method, call.path, params=call.params, content=call.body, headers=call.headers
            )
        except httpx.TransportError as exc:
            return exc
