"""An API that answers from a script, for the clients' unit tests (httpx.MockTransport)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

TASK_ID = "01a22e11-3e0a-7292-9f79-43ba6e78bd18"


def task_json(status: str = "PENDING", **changes: Any) -> dict[str, Any]:
    """A task as the API writes it."""
    task = {
        "id": TASK_ID,
        "type": "debug.echo",
        "payload": {"n": 1},
        "status": status,
        "queue": "default",
        "priority": 5,
        "attempts": 0,
        "retry_count": 0,
        "max_retries": 3,
        "timeout_seconds": None,
        "run_at": "2026-11-30T20:06:51.658677Z",
        "created_at": "2026-11-30T20:06:51.000000Z",
        "started_at": None,
        "finished_at": None,
        "updated_at": "2026-11-30T20:06:51.658677Z",
        "cancel_requested": False,
        "progress": None,
        "result": None,
        "error": None,
        "metadata": {},
        "idempotency_key": None,
    }
    return {**task, **changes}


def attempt_json(
    n: int, outcome: str | None, error: dict[str, str] | None = None
) -> dict[str, Any]:
    """One attempt of a task's history as the API writes it; ``outcome`` None while it runs."""
    return {
        "attempt": n,
        "worker_id": "vm:1:abc",
        "started_at": "2026-11-30T20:06:52.000000Z",
        "finished_at": None if outcome is None else "2026-11-30T20:06:53.000000Z",
        "outcome": outcome,
        "error": None if error is None else {**error, "traceback": None},
    }


def problem(status: int, detail: str, errors: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": "x", "status": status, "detail": detail}
    if errors:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    return body


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    kind = "application/problem+json" if status >= 400 else "application/json"
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": kind, **(headers or {})},
    )


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception


@dataclass
class ScriptedApi:
    """Answers each request with the next of ``answers`` (the last one again when they run
    out) and keeps every request it saw."""

    answers: list[Answer]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        step = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@dataclass
class FakeTime:
    """A clock that moves only when slept on; records every sleep."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> float:
        return self.now


def new_id() -> str:
    return str(uuid.uuid4())
