"""Deliveries of completion webhooks: what one attempt recorded, and when to try again.

A task with a callback gets one *message* per final state it reaches (a manual retry that ends
again is a new message, with a new ``webhook-id``). Each message is sent until the receiver
answers ``2xx``, retried with exponential backoff, and given up once the next try would start
later than ``window`` seconds after the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from taskflow.domain.model import Task

#: Seconds before the first retry of a message, doubled for each one after, up to the cap.
DELIVERY_BACKOFF_BASE: Final = 1.0
DELIVERY_BACKOFF_MAX: Final = 600.0
#: How long a message is retried by default (TASKFLOW_CALLBACK_RETRY_SECONDS).
DELIVERY_WINDOW_DEFAULT: Final = 24 * 3600.0
#: The most an error text of a delivery keeps, in characters.
DELIVERY_ERROR_MAX_LENGTH: Final = 500


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver a task's webhook: the receiver's status code, if it answered,
    and why the attempt failed (null for a ``2xx``)."""

    attempt: int  # 1, 2, … over the task's whole life
    at: datetime
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Sent:
    """What a receiver made of one POST: its status code, or why there was none."""

    status_code: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def problem(self) -> str | None:
        if self.ok:
            return None
        if self.error is not None:
            return self.error[:DELIVERY_ERROR_MAX_LENGTH]
        return f"the receiver answered {self.status_code}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DueCallback:
    """A final task whose webhook is due, leased to one deliverer (``token``) for a while."""

    task: Task  # as it is now: final, at the version the message is for
    url: str
    message_id: str  # the ``webhook-id``: one per message, the same on each of its tries
    started_at: datetime  # the message's first try
    tries: int  # tries of this message before this one
    attempt: int  # the number this try gets among all the task's deliveries
    token: UUID


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """When a message that failed is tried again, and when it is given up."""

    window: float = DELIVERY_WINDOW_DEFAULT
    base: float = DELIVERY_BACKOFF_BASE
    max: float = DELIVERY_BACKOFF_MAX

    def retry_at(self, due: DueCallback, *, now: datetime, rand: float) -> datetime | None:
        """The next try after try ``due.tries + 1`` failed at ``now``, with equal jitter from
        ``rand`` in [0, 1); None when it would start past the window: give up."""
        ceiling = min(self.max, self.base * 2 ** min(due.tries, 64))
        at = now + timedelta(seconds=ceiling / 2 + rand * ceiling / 2)
        if at - due.started_at > timedelta(seconds=self.window):
            return None
        return at
