"""A trace id for every request: on each log line written while serving it, and in its answer.

The id is the trace id of the client's W3C ``traceparent`` header when it sent a valid one (so
the API's lines join the caller's trace), else its ``X-Request-ID`` when that is a plausible
id, else 32 random hex digits (the shape of a W3C trace id). The answer carries it back as
``X-Request-ID``. A malformed header is ignored, never refused: tracing must not fail a request.

Plain ASGI, no Request object: it runs on every submission, so it costs a scan of the header
list, a context variable and one header more.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from taskflow.adapters.prometheus.counting import UNMATCHED
from taskflow.entrypoints.logs import bind_trace_id, unbind_trace_id

#: Told of each answered request: method, route template, status, seconds (`Metrics.request`).
RequestTimer = Callable[[str, str, int, float], None]


class Admission(Protocol):
    """Whether a request may go on (``auth.KeyCheck``)."""

    def admitted(self, scope: Scope) -> bool:
        """True: it goes on; False: ask ``admit``."""

    async def admit(self, scope: Scope, send: Send) -> bool:
        """Whether it goes on; when not, its answer has been sent."""


TRACEPARENT = b"traceparent"
REQUEST_ID = b"x-request-id"
#: The longest ``X-Request-ID`` taken from a client; a longer one is replaced.
REQUEST_ID_MAX_LENGTH = 128

# version "-" trace-id "-" parent-id "-" flags; version ff and all-zero ids are invalid.
_TRACEPARENT = re.compile(
    rb"^(?!ff)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
# Visible ASCII without the characters that would need quoting in a header or a log line.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:;+/=@,~-]{1,%d}" % REQUEST_ID_MAX_LENGTH)


def trace_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The id of a request with ``headers`` (ASGI: names in lower case)."""
    request_id = None
    for name, value in headers:
        if name == TRACEPARENT:
            match = _TRACEPARENT.match(value)
            if match is not None:
                return match.group(1).decode()
        elif name == REQUEST_ID and _REQUEST_ID.fullmatch(value):
            request_id = value
    # Unique, not secret: the generator OpenTelemetry's SDK uses for its ids, and cheaper.
    return f"{random.getrandbits(128):032x}" if request_id is None else request_id.decode()  # nosec B311


class RequestIds:
    """ASGI middleware: binds the request's trace id for its log lines and answers it; with
    ``timed`` (metrics on), also counts the request by route template and status, in the same
    wrapper: each layer around the handler costs the submit path as much as its own work.
    ``headers`` are added to every answer as they are (`security_headers.API_HEADERS`).
    ``check`` decides who may go on to the app (the API keys, decision 30); its refusals are
    answered with the id and timed like any answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        timed: RequestTimer | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
        check: Admission | None = None,
    ) -> None:
        self.app = app
        self._timed = timed
        self._headers = tuple(headers)
        self._check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trace_id = trace_id_of(scope["headers"])
        added = ((REQUEST_ID, trace_id.encode()), *self._headers)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                answer: Any = message
                status = answer["status"]
                answer["headers"] = [*answer.get("headers", ()), *added]
            await send(message)

        token = bind_trace_id(trace_id)
        began = time.perf_counter()
        try:
            check = self._check
            if check is None or check.admitted(scope) or await check.admit(scope, send_with_id):
                await self.app(scope, receive, send_with_id)
        finally:
            unbind_trace_id(token)
            if self._timed is not None:
                # The router put the matched route's template in the scope (none: unmatched).
                http: Any = scope  # an HTTP scope: the API serves no websocket
                route = http.get("path_template") or UNMATCHED
                self._timed(http["method"], route, status, time.perf_counter() - began)
