"""The sweep: reap expired leases and give the queue back what it lost.

Every worker runs it, and so does every API process; several sweeps at once are safe,
since reaping is a compare-and-set and re-dispatching is an idempotent push.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from taskflow.adapters.cancelling import stop_if_cancelled
from taskflow.adapters.prometheus import Metrics
from taskflow.domain.errors import QueueUnavailable, StoreUnavailable
from taskflow.domain.model import TaskStatus
from taskflow.domain.services import ExecutionService, LostLease
from taskflow.entrypoints.logs import EventLog, error_facts, retry_facts, task_facts

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
        self._metrics.leases_expired([lost.task for lost in reaped])
        for lost in reaped:
            events.warning("lease expired, attempt failed", lost_lease_facts(lost))

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


def lost_lease_facts(lost: LostLease) -> dict[str, object]:
    """What the line of an attempt whose lease ran out says: the worker that held it, and
    when the task runs again if it does."""
    task = lost.task
    facts = {
        **task_facts(task, worker_id=lost.worker_id),
        "status": task.status.value,
        "error": error_facts(task),
    }
    if task.status is TaskStatus.PENDING:
        facts |= retry_facts(task)
    return facts


async def run_step(step: Callable[[], Awaitable[object]]) -> None:
    """Run one step of a periodic loop: an outage is waited out, a bug logged with its
    traceback; neither stops the loop. A loop being cancelled (shutdown) stops, whatever
    a driver made of the cancel inside the step: its own error, or nothing at all."""
    try:
        await step()
    except OUTAGES as exc:
        stop_if_cancelled(exc)
        log.warning("%s skipped", step.__name__, extra={"error": str(exc)})
    except Exception as exc:
        stop_if_cancelled(exc)
        log.exception("%s failed", step.__name__)
    else:
        stop_if_cancelled()


async def log_queue_warnings(service: ExecutionService) -> None:
    """Best effort: a queue that cannot be asked now is no reason not to start."""
    try:
        warnings = await service.queue_warnings()
    except Exception as exc:
        log.warning("could not check the queue's settings", extra={"error": str(exc)})
        return
    for warning in warnings:
        log.warning(warning)
