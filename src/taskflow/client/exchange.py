"""How a call is carried out, without doing any I/O: send, read the answer, and on a 503 or a
broken connection wait and send again. Also the polling of ``wait``.

Each is a generator of :class:`Send` and :class:`Pause` steps; a client performs each step
(synchronously or not) and sends back what came of it. So the retry rules and the polling are
written once for both clients, and tests can drive them without a clock.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from taskflow.client import calls
from taskflow.client.answers import Task
from taskflow.client.errors import error_for
from taskflow.client.settings import Connection

T = TypeVar("T")

#: The longest pause between two tries of a call, whatever ``Retry-After`` asks.
MAX_RETRY_PAUSE = 30.0
#: The first pause before trying again without a ``Retry-After``; it doubles each time.
FIRST_RETRY_PAUSE = 0.5
#: ``wait`` polls less and less often: each pause is this much longer, up to its cap.
POLL_GROWTH = 1.5


@dataclass(frozen=True, slots=True)
class Send:
    call: calls.Call[Any]


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


Step = Send | Pause
#: What the client sends back: the answer or the broken connection after a Send, None after
#: a Pause.
Outcome = httpx.Response | httpx.TransportError | None
Steps = Generator[Step, Outcome, T]


def exchange(call: calls.Call[T], retries: int) -> Steps[T]:
    """Send ``call``; try again up to ``retries`` times after a 503 or a lost connection."""
    tries = 0
    while True:
        outcome = yield Send(call)
        pause = _pause_before_next_try(call, outcome, tries, retries)
        if pause is None:
            return _conclude(call, outcome)
        tries += 1
        yield Pause(pause)


def waiting(
    task_id: calls.TaskId,
    connection: Connection,
    timeout: float,
    pauses: tuple[float, float],
) -> Steps[Task]:
    """Poll the task until it is final; pauses grow from the first of ``pauses`` to the
    second."""
    clock = connection.clock
    deadline = clock() + timeout
    pause, max_pause = pauses
    while True:
        task = yield from exchange(calls.get(task_id), connection.retries)
        if task.done:
            return task
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError(f"task {task_id} is still {task.status} after {timeout}s")
        yield Pause(min(pause, left))
        pause = min(pause * POLL_GROWTH, max_pause)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, given as seconds or as an HTTP date; None when absent."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _pause_before_next_try(
    call: calls.Call[Any], outcome: Outcome, tries: int, retries: int
) -> float | None:
    if tries >= retries:
        return None
    backoff = FIRST_RETRY_PAUSE * 2.0**tries
    if isinstance(outcome, httpx.Response):
        if outcome.status_code != 503:
            return None
        asked = retry_after(outcome)
        return min(MAX_RETRY_PAUSE, backoff if asked is None else asked)
    # Nothing reached the server when the connection could not be opened; once it was, only a
    # request that changes nothing twice may go again.
    if isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout) or call.resendable:
        return min(MAX_RETRY_PAUSE, backoff)
    return None


def _conclude(call: calls.Call[T], outcome: Outcome) -> T:
    if isinstance(outcome, httpx.TransportError):
        raise outcome
    if outcome is None:  # pragma: no cover - a client that breaks the protocol
        raise RuntimeError("a Send step must be answered with a response or an error")
    if outcome.status_code >= 400:
        raise error_for(
            outcome.status_code,
            outcome.content,
            retry_after=retry_after(outcome),
            refused=call.refused,
        )
    return call.read(outcome.content)
