"""The fleet as operators see it: the live workers and the state of each queue (decision 25).

Values only: the registry of workers, the paused queues and the queue depths are ports
(``domain/ports.py``); ``FleetService`` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

#: A worker that misses this many heartbeats in a row drops out of the live ones.
MISSED_BEATS: Final = 3
#: The window of a queue's throughput, in seconds.
THROUGHPUT_WINDOW_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a live worker last said of itself."""

    id: str
    host: str
    pid: int
    version: str
    queues: tuple[str, ...]
    concurrency: int
    running: tuple[UUID, ...]  # task ids running now
    started_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """What the dispatch queue holds for one queue: ids due now (``ready``), ids waiting for
    their run_at (``delayed``), and the earliest run_at among the ready ones."""

    ready: int = 0
    delayed: int = 0
    oldest_ready_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Throughput:
    """Tasks of one queue that reached SUCCESS or FAILED within the window."""

    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue, now: its depth, what runs, what finished lately, its limits, who serves it."""

    name: str
    ready: int
    delayed: int
    processing: int
    oldest_ready_age_seconds: float | None
    succeeded_last_minute: int
    failed_last_minute: int
    rate_limit: str | None  # e.g. "10/s": the configured limit, or None
    concurrency: int | None
    paused: bool
    consumers: int  # live workers consuming it

    @property
    def unconsumed(self) -> bool:
        """It has work waiting (ready or delayed) and no live worker consumes it."""
        return self.ready + self.delayed > 0 and self.consumers == 0


def consumers_of(workers: list[WorkerInfo]) -> dict[str, int]:
    """How many of ``workers`` consume each queue."""
    counts: dict[str, int] = {}
    for worker in workers:
        for queue in set(worker.queues):
            counts[queue] = counts.get(queue, 0) + 1
    return counts
