"""``AsyncClient``: the asyncio twin of ``Client`` (docs/api.md, "Python API → Client")."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, Unpack

import httpx

from taskflow.client import calls
from taskflow.client.answers import Attempt, RetriedTasks, Task, TaskCount, TaskPage
from taskflow.client.exchange import Outcome, Pause, Step, Steps, exchange, waiting
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
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        connection = Connection.of(base_url, api_key=api_key, retries=retries)
        self._connection = connection
        self._http = httpx.AsyncClient(
            base_url=connection.base_url,
            headers=connection.headers,
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep
        self._clock = clock

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
        """Submit one task (``POST /api/tasks``); returns it, PENDING."""
        return await self._call(calls.submit(type, payload, options))

    async def submit_many(
        self,
        submissions: Iterable[calls.Submission | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Task]:
        """Submit 1 to 1000 tasks, all or none (``POST /api/tasks/batch``), in this order."""
        return await self._call(calls.submit_many(submissions, idempotency_key))

    async def get(self, task_id: calls.TaskId) -> Task:
        """The task as it is now."""
        return await self._call(calls.get(task_id))

    async def attempts(self, task_id: calls.TaskId) -> list[Attempt]:
        """The task's attempts, oldest first."""
        return await self._call(calls.attempts(task_id))

    async def wait(
        self,
        task_id: calls.TaskId,
        *,
        timeout: float = 60.0,
        interval: float = 0.1,
        max_interval: float = 2.0,
    ) -> Task:
        """Poll until the task is SUCCESS, FAILED or CANCELLED, and return it; the pauses grow
        from ``interval`` to ``max_interval``. ``TimeoutError`` after ``timeout`` seconds."""
        return await self._run(
            waiting(
                task_id,
                timeout=timeout,
                interval=interval,
                max_interval=max_interval,
                clock=self._clock,
                retries=self._connection.retries,
            )
        )

    async def cancel(self, task_id: calls.TaskId) -> Task:
        """Cancel the task: CANCELLED at once if PENDING, else ``cancel_requested``."""
        return await self._call(calls.cancel(task_id))

    async def retry(self, task_id: calls.TaskId, payload: calls.Payload | None = None) -> Task:
        """Run a FAILED or CANCELLED task again, with a new payload if one is given."""
        return await self._call(calls.retry(task_id, payload))

    async def retry_many(self, **selection: Unpack[calls.RetrySelection]) -> RetriedTasks:
        """Run again the FAILED or CANCELLED tasks that the filters select."""
        return await self._call(calls.retry_many(selection))

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Unpack[calls.TaskFilters],
    ) -> TaskPage:
        """One page of tasks, newest first; give ``next_cursor`` back as ``cursor``."""
        return await self._call(calls.list_tasks(filters, limit=limit, cursor=cursor))

    async def pages(
        self, *, limit: int | None = None, **filters: Unpack[calls.TaskFilters]
    ) -> AsyncIterator[TaskPage]:
        """Every page of tasks that fit the filters, newest first, fetched as you iterate."""
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
        """Every task that fits the filters, newest first, a page of ``limit`` at a time."""
        async for page in self.pages(limit=limit, **filters):
            for task in page.items:
                yield task

    async def stats(self) -> builtins.list[TaskCount]:
        """How many tasks there are per queue, type and status."""
        return await self._call(calls.stats())

    async def _call(self, call: calls.Call[T]) -> T:
        return await self._run(exchange(call, retries=self._connection.retries))

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
