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
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

from taskflow.domain.errors import StoreUnavailable
from taskflow.domain.ports import Renewal
from taskflow.domain.services import ExecutionService

log = logging.getLogger("taskflow.worker")

#: Opens a service on a repository of the keeper's own (its loop, its connection); returns it
#: with the function that closes that repository.
ServiceOpener = Callable[[], tuple[ExecutionService, Callable[[], Awaitable[None]]]]


class LeaseKeeper:
    def __init__(self, open_service: ServiceOpener, *, interval: float) -> None:
        self._open = open_service
        self._interval = interval
        self._leases: dict[UUID, UUID] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self,
        on_renewal: Callable[[Mapping[UUID, UUID], Renewal], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Renew until `stop`; ``on_renewal(leases, renewal)`` runs on ``loop`` after each
        renewal that lost a lease or found a cancel request."""

        def report(leases: Mapping[UUID, UUID], renewal: Renewal) -> None:
            loop.call_soon_threadsafe(on_renewal, leases, renewal)

        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(report)), name="taskflow-leases", daemon=True
        )
        self._thread.start()

    def track(self, leases: Mapping[UUID, UUID]) -> None:
        """Renew these leases (task id → token) from now on."""
        with self._lock:
            self._leases.update(leases)

    def forget(self, task_id: UUID) -> None:
        with self._lock:
            self._leases.pop(task_id, None)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 10)

    async def _run(self, report: Callable[[Mapping[UUID, UUID], Renewal], None]) -> None:
        service, close = self._open()
        try:
            while not self._stopping.wait(self._interval):
                await self._renew(service, report)
        finally:
            await close()

    async def _renew(
        self,
        service: ExecutionService,
        report: Callable[[Mapping[UUID, UUID], Renewal], None],
    ) -> None:
        with self._lock:
            leases = dict(self._leases)
        if not leases:
            return
        try:
            renewal = await service.renew(leases)
        except StoreUnavailable as exc:
            log.warning("lease renewal failed, retrying", extra={"error": str(exc)})
            return
        lost = leases.keys() - renewal.held
        for task_id in lost:
            self.forget(task_id)
        if lost or renewal.cancel_requested:
            report(leases, renewal)
