"""The queues-and-workers service as the dashboard sees it (docs/api.md, "Queues and workers").

The dashboard reads only the fields named here, so it is written against this shape rather
than against the service's module; the container's ``fleet_service`` provides it, and while a
build has none the queues and workers pages say so instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID


class QueueView(Protocol):
    name: str
    ready: int
    delayed: int
    processing: int
    oldest_ready_age_seconds: float | None
    succeeded_last_minute: int
    failed_last_minute: int
    rate_limit: str | None
    concurrency: int | None
    paused: bool
    consumers: int

    @property
    def unconsumed(self) -> bool: ...


class WorkerView(Protocol):
    id: str
    host: str
    pid: int
    version: str
    queues: Sequence[str]
    concurrency: int
    running: Sequence[UUID]
    started_at: datetime
    last_seen_at: datetime


@runtime_checkable  # Litestar checks a dependency against its annotation
class Fleet(Protocol):
    async def workers(self) -> Sequence[WorkerView]: ...
    async def queues(self) -> Sequence[QueueView]: ...
    async def pause(self, queue: str) -> Any: ...
    async def resume(self, queue: str) -> Any: ...


FleetSource = Callable[[], Fleet] | None


def fleet_of(container: object) -> FleetSource:
    """The container's ``fleet_service`` provider, or None in a build without one."""
    provider = getattr(container, "fleet_service", None)
    return provider if callable(provider) else None
