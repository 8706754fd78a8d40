"""A JSON answer for the submit path, sent without Litestar's general response machinery.

Litestar turns a `Response` into an `ASGIResponse` that builds a case-insensitive header
map, looks two headers up in it to fill in defaults, and merges cookies and type encoders:
about a tenth of a single submission's CPU. `JsonAnswer` is still a `Response` (the handler's
annotation, and so the OpenAPI document, are unchanged), but its ASGI form is two prepared
messages. Only for answers that need nothing more: JSON of msgspec-native values, no
cookies, no background task, and no headers from the app's layers (none are configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from litestar import Response
from litestar.types import Receive, Scope, Send

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


class JsonAnswer(Response[T]):
    __slots__ = ()

    def __init__(
        self, content: T, *, status_code: int, headers: Mapping[str, str] | None = None
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.headers = dict(headers or {})
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.media_type = None
        self.response_type_encoders = {}

    def to_asgi_response(self, app: Any, request: Any, **layered: Any) -> Any:
        """A `Sent`. Of what the route's and app's layers set (``layered``), only their
        headers apply: none of the rest is configured for the routes that answer this way."""
        body = _encode(self.content)
        headers = [_JSON, (b"content-length", b"%d" % len(body))]
        named = {**layered["headers"], **self.headers} if layered.get("headers") else self.headers
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in named.items()]
        assert self.status_code is not None  # set by __init__
        return Sent(self.status_code, headers, body)


class Sent:
    """The ASGI app of one answer: its start, then its whole body."""

    __slots__ = ("_body", "_start")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._start = {"type": "http.response.start", "status": status, "headers": headers}
        self._body = {"type": "http.response.body", "body": body, "more_body": False}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start)  # type: ignore[arg-type]
        await send(self._body)  # type: ignore[arg-type]
