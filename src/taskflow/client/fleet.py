"""The answers about queues and workers (``GET /api/workers``, ``GET /api/queues``, pausing and
resuming a queue): docs/api.md, "Queues and workers"."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class Worker(msgspec.Struct, frozen=True):
    """A live worker, as its last heartbeat said."""

    id: str
    host: str
    pid: int
    version: str
    queues: list[str]
    concurrency: int
    running: list[UUID]  # the tasks it runs now
    running_count: int
    started_at: datetime
    last_seen_at: datetime


class QueueThroughput(msgspec.Struct, frozen=True):
    """Tasks that reached SUCCESS or FAILED over the last minute."""

    succeeded: int
    failed: int


class QueueLimits(msgspec.Struct, frozen=True):
    """The queue's configured rate (e.g. ``"10/s"``) and concurrency; None: no such limit."""

    rate: str | None
    concurrency: int | None


class Queue(msgspec.Struct, frozen=True):
    """One queue now; ``unconsumed``: work waits and no live worker consumes the queue."""

    name: str
    ready: int
    delayed: int
    processing: int
    oldest_ready_age_seconds: float | None
    throughput_last_minute: QueueThroughput
    limits: QueueLimits
    paused: bool
    consumers: int
    unconsumed: bool


# The envelopes the lists come in; the client unwraps them.
class WorkerList(msgspec.Struct, frozen=True):
    workers: list[Worker]


class QueueList(msgspec.Struct, frozen=True):
    queues: list[Queue]
