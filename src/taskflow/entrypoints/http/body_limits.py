"""What a request body must be before any handler decodes it (docs/security.md, "Limits").

The routes that take a JSON body run ``json_body`` (or ``optional_json_body``) before their
handler: a JSON content type (else 415), the body in within TASKFLOW_BODY_TIMEOUT_SECONDS
(else 408), at most TASKFLOW_MAX_BODY_BYTES (Litestar stops reading beyond it: 413), and a
document ``json_problem`` does not refuse (400). The handler then decodes the same bytes,
which Litestar kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, HTTPException, InternalServerException

from taskflow.domain.errors import InvalidSubmission
from taskflow.domain.json_limits import json_problem
from taskflow.domain.unstorable import suspect
from taskflow.entrypoints.http.head_limits import BODY_IN

#: Sent with an answer given before the body was all read: the rest is never parsed.
CLOSE = {"Connection": "close"}
#: Set in a request's scope when its JSON body writes no ``\u0000``: no string decoded from
#: it can hold U+0000, so the values need no search for it (``taskflow.domain.unstorable``).
NO_NUL = "taskflow.no_nul"


class BodyDeadlines:
    """Cuts off a client that sends its body too slowly: uvicorn waits for it forever.

    A read registers its task with its deadline; a timer, armed only while reads are under
    way, cancels the late ones. No timer per request: arming one cost a submission more than
    a tenth of its CPU, while a read in the common case ends at once, its body already in.
    When the server says so (``head_limits.BODY_IN``), that read registers nothing at all.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def read(self, request: Request[Any, Any, Any]) -> bytes:
        if BODY_IN in request.scope:  # nothing left to wait for
            return await request.body()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a request is always served by a task
            return await request.body()
        self._reading[task] = time.monotonic() + self.seconds
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:
            self._arm(loop)
        try:
            return await request.body()
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            task.uncancel()
            raise HTTPException(
                status_code=408,
                detail=f"the request body did not arrive within {self.seconds:g} seconds "
                "(TASKFLOW_BODY_TIMEOUT_SECONDS)",
                headers=CLOSE,
            ) from None
        except InternalServerException:  # Litestar's word for a client that went away
            raise ClientException("the client closed the connection mid-body") from None
        finally:
            del self._reading[task]
            self._late.discard(task)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer = loop.call_later(min(1.0, self.seconds / 4), self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        for task, deadline in list(self._reading.items()):
            if deadline <= now and task not in self._late:
                self._late.add(task)
                task.cancel()
        if self._reading and self._loop is not None:
            self._arm(self._loop)


class Limits(msgspec.Struct, frozen=True):
    """The body limits of one app, read by the routes from its state."""

    max_payload_bytes: int
    max_body_bytes: int
    deadlines: BodyDeadlines | None = None


_decode_any = msgspec.json.Decoder().decode
_encode_any = msgspec.json.Encoder().encode


def _recode(document: bytes) -> bytes:
    """``json_limits.Recode`` by msgspec: a batch of 500 tasks in a fifth of the standard
    library's time (decision 32)."""
    return _encode_any(_decode_any(document))


def _media_type_problem(request: Request[Any, Any, Any]) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type must be application/json, got {content_type[:100] or 'none'!r}",
        )


async def json_body(request: Request[Any, Any, Any]) -> None:
    """Before a route whose body is a JSON document."""
    _media_type_problem(request)
    limits: Limits = request.app.state.limits
    body = await (request.body() if limits.deadlines is None else limits.deadlines.read(request))
    refused = json_problem(body, _recode)
    if refused is not None:
        where, why = refused
        raise InvalidSubmission(why, field=where)
    if not suspect(body):  # JSON writes U+0000 only escaped: one search covers every value
        scope: Any = request.scope
        scope[NO_NUL] = True


async def optional_json_body(request: Request[Any, Any, Any]) -> None:
    """Before a route whose JSON body may be left out."""
    headers = request.headers
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        await json_body(request)
