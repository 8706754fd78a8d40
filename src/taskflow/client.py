"""A small synchronous client for the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

FINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


class ApiError(Exception):
    """The API answered with an error (problem details in ``problem``)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail', problem)}")
        self.status = status
        self.problem = problem


class Client:
    """Submit tasks and follow them.

    >>> with Client("http://127.0.0.1:8000") as tf:
    ...     task = tf.submit("debug.echo", {"hello": "world"})
    ...     done = tf.wait(task["id"])
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self, type: str, payload: dict[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Submit one task; ``options`` are a submission's optional fields (queue, priority, …;
        see docs/api.md, "HTTP API")
        """
        body = {"type": type, "payload": payload or {}, **options}
        return self._call("POST", "/api/tasks", json=body)

    def get(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/tasks/{task_id}")

    def retry(self, task_id: str) -> dict[str, Any]:
        """Run a FAILED or CANCELLED task again; ApiError 409 for any other status."""
        return self._call("POST", f"/api/tasks/{task_id}/retry")

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a task: a PENDING one is CANCELLED at once, a PROCESSING one gets
        ``cancel_requested`` and its worker stops it. ``ApiError`` 409 if it is final already."""
        return self._call("POST", f"/api/tasks/{task_id}/cancel")

    def wait(self, task_id: str, *, timeout: float = 60.0, interval: float = 0.1) -> dict[str, Any]:
        """Poll until the task reaches a final state; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task["status"] in FINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout}s")
            time.sleep(interval)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:300]}
            raise ApiError(response.status_code, problem)
        result: dict[str, Any] = response.json()
        return result

    def list(
        self,
        *,
        status: Sequence[str] = (),
        type: str | None = None,
        queue: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of tasks, newest first: ``{"items": [task, …], "next_cursor": str | None}``.

        Pass ``next_cursor`` back as ``cursor`` (with the same filters) for the next page.
        Timestamps must carry a time zone; metadata values are compared as docs/api.md says.
        """
        params: list[tuple[str, str]] = [("status", s) for s in status]
        named = {
            "type": type,
            "queue": queue,
            "created_after": _text(created_after),
            "created_before": _text(created_before),
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        params += [(name, value) for name, value in named.items() if value is not None]
        params += [(f"metadata.{key}", value) for key, value in (metadata or {}).items()]
        return self._call("GET", "/api/tasks", params=params)

    def stats(self) -> dict[str, Any]:
        """``{"items": [{queue, type, status, count}, …]}``: tasks per queue, type and status."""
        return self._call("GET", "/api/tasks/stats")


def _text(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment
