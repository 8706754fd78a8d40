"""Lease renewal on a thread of its own.

A heartbeat on the worker's event loop would wait behind an ``async def`` handler that hogs
the loop (CPU work, a blocking call); its lease would lapse and a second worker would start the
same task while the first still runs it. The keeper renews from its own thread, with its own
event loop and its own store connection, so only a dead or frozen process loses its leases.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from uuid import UUID

from taskflow.domain.errors import StoreUnavailable
from taskflow.domain.ports import TaskRepository

log = logging.getLogger("taskflow.worker")

#: Opens a repository for the keeper's own loop; returns it with the function that closes it.
RepositoryOpener = Callable[[], tuple[TaskRepository, Callable[[], Awaitable[None]]]]


class LeaseKeeper:
    def __init__(
        self, open_repository: RepositoryOpener, *, interval: float, lease_seconds: float
    ) -> None:
        self._open = open_repository
        self._interval = interval
        self._lease_seconds = lease_seconds
        self._leases: dict[UUID, UUID] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_lost: Callable[[UUID], None], loop: asyncio.AbstractEventLoop) -> None:
        """Renew until `stop`; ``on_lost(task_id)`` runs on ``loop`` when a lease is gone."""

        def lost(task_id: UUID) -> None:
            loop.call_soon_threadsafe(on_lost, task_id)

        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(lost)), name="taskflow-leases", daemon=True
        )
        self._thread.start()

    def track(self, task_id: UUID, token: UUID) -> None:
        with self._lock:
            self._leases[task_id] = token

    def forget(self, task_id: UUID) -> None:
        with self._lock:
            self._leases.pop(task_id, None)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 10)

    async def _run(self, lost: Callable[[UUID], None]) -> None:
        repository, close = self._open()
        try:
            while not self._stopping.wait(self._interval):
                await self._renew(repository, lost)
        finally:
            await close()

    async def _renew(self, repository: TaskRepository, lost: Callable[[UUID], None]) -> None:
        with self._lock:
            leases = dict(self._leases)
        if not leases:
            return
        try:
            held = await repository.renew_leases(leases, lease_seconds=self._lease_seconds)
        except StoreUnavailable as exc:
            log.warning("lease renewal failed, retrying", extra={"error": str(exc)})
            return
        for task_id in leases.keys() - held:
            self.forget(task_id)
            lost(task_id)
