"""The ``submit`` span: an ASGI middleware around the submit routes, on while tracing is on.

It continues the producer's trace when the request carries a W3C ``traceparent`` header, and
is the current span while the task is built (the task keeps it) and dispatched (decision 28).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from litestar.datastructures import Headers
from litestar.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from taskflow.adapters.otel.spans import Tracing

#: The operations traced: the two ways to submit.
SUBMIT_OPERATIONS: Final = frozenset({"submit_task", "submit_batch"})


def submit_tracing(tracing: Tracing) -> Callable[[ASGIApp], ASGIApp]:
    """A Litestar middleware (a factory of ASGI apps) that traces the submit routes."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            handler = scope.get("route_handler")
            if getattr(handler, "operation_id", None) not in SUBMIT_OPERATIONS:
                await app(scope, receive, send)
                return
            headers = Headers.from_scope(scope)
            with tracing.serving(
                str(scope.get("method", "POST")),
                scope["path"].rstrip("/") or "/",
                traceparent=headers.get("traceparent"),
                tracestate=headers.get("tracestate"),
            ) as served:

                async def answering(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        served.answered(message["status"])
                    await send(message)

                await app(scope, receive, answering)

        return traced

    return middleware
