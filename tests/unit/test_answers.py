"""`JsonAnswer` sends what Litestar's own `Response` would, by a shorter road."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Response

from taskflow.entrypoints.http.answers import JsonAnswer


class Out(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    at: datetime
    payload: dict[str, Any]
    note: str | None = None


CONTENT = Out(
    id=uuid.uuid4(),
    at=datetime(2026, 12, 1, 14, 30, 5, 123456, tzinfo=UTC),
    payload={"n": 1, "nested": [1.5, None, True, "é ✓"], "big": 2**60},
)
SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/api/tasks", "headers": []}


async def sent(response: Any) -> tuple[int, dict[bytes, bytes], bytes]:
    messages: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("an answer reads nothing")

    async def send(message: Any) -> None:
        messages.append(message)

    await response(SCOPE, receive, send)
    start, *bodies = messages
    assert start["type"] == "http.response.start"
    body = b"".join(m.get("body", b"") for m in bodies)
    return start["status"], {k.lower(): v for k, v in start["headers"]}, body


async def test_it_sends_what_litestar_would() -> None:
    headers = {"Location": "/api/tasks/x", "Idempotent-Replayed": "true"}
    ours = JsonAnswer(CONTENT, status_code=202, headers=headers).to_asgi_response(None, None)
    theirs = Response(CONTENT, status_code=202, headers=headers).to_asgi_response(
        None,
        None,  # type: ignore[arg-type]
    )
    assert await sent(ours) == await sent(theirs)


async def test_headers_set_on_the_route_or_app_apply_and_its_own_win() -> None:
    answer = JsonAnswer(CONTENT, status_code=202, headers={"Location": "/here"})
    layered = {"Cache-Control": "no-store", "Location": "/there"}
    _, headers, body = await sent(answer.to_asgi_response(None, None, headers=layered))
    assert (headers[b"cache-control"], headers[b"location"]) == (b"no-store", b"/here")
    assert headers[b"content-length"] == str(len(body)).encode()
    assert msgspec.json.decode(body)["payload"]["big"] == 2**60
