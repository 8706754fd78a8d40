"""The sweep: reap expired leases and give the queue back what it lost.

Every worker runs it, and so does every API process; several sweeps at once are safe,
since reaping is a compare-and-set and re-dispatching is an idempotent push.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from taskflow.adapters.prometheus import Metrics
from taskflow.domain.errors import QueueUnavailable, StoreUnavailable
from taskflow.domain.services import ExecutionService
from taskflow.entrypoints.logs import EventLog, error_facts, task_facts

log = logging.getLogger("taskflow.sweeper")
events = EventLog(log)

#: Failures of the store or queue that a sweep waits out instead of dying.
OUTAGES = (StoreUnavailable, QueueUnavailable)


class Sweeper:
    def __init__(self, service: ExecutionService, metrics: Metrics | None = None) -> None:
        self._service = service
        self._metrics = metrics or Metrics()
        self._cursor: UUID | None = None

    async def sweep(self) -> None:
        """One pass: expired leases become failed attempts; missing ids are pushed again."""
        await self.reap()
        await self.reconcile()
        await self.prune()

    async def reap(self) -> None:
        reaped = await self._service.reap()
        self._metrics.leases_expired(reaped)
        for task in reaped:
            events.warning(
                "lease expired, attempt failed",
                {**task_facts(task), "status": task.status.value, "error": error_facts(task)},
            )

    async def prune(self) -> None:
        await self._service.prune_idempotency_keys()  # those past IDEMPOTENCY_KEY_TTL

    async def reconcile(self) -> None:
        step = await self._service.reconcile(after=self._cursor)
        self._cursor = step.cursor
        if step.pushed or step.resync:
            log.info(
                "re-dispatched tasks missing from the queue",
                extra={"tasks": step.pushed, "full_resync": step.resync},
            )

    async def run(self, interval: float) -> None:
        """Sweep now, then every ``interval`` seconds, until cancelled."""
        while True:
            # Each step on its own: a failing reaper must not stop re-dispatching, nor back.
            for step in (self.reap, self.reconcile, self.prune):
                await run_step(step)
            await asyncio.sleep(interval)


async def run_step(step: Callable[[], Awaitable[object]]) -> None:
    """Run one step of a periodic loop: an outage is waited out, a bug logged with its
    traceback; neither stops the loop."""
    try:
        await step()
    except OUTAGES as exc:
        log.warning("%s skipped", step.__name__, extra={"error": str(exc)})
    except Exception:
        log.exception("%s failed", step.__name__)


async def log_queue_warnings(service: ExecutionService) -> None:
    """Best effort: a queue that cannot be asked now is no reason not to start."""
    try:
        warnings = await service.queue_warnings()
    except Exception as exc:
        log.warning("could not check the queue's settings", extra={"error": str(exc)})
        return
    for warning in warnings:
        log.warning(warning)
