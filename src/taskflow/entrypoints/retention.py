"""The retention job: every worker process deletes the finished tasks kept long enough.

Decision 24. A pass takes the cutoffs once, then deletes a batch at a time (each batch one
short statement of its own) until a batch comes back short, resting between batches. One
process passes at a time across the deployment (``RetentionService.alone``): the load on the
database does not grow with the number of workers. Should two passes overlap all the same (a
lock lost with its connection), their batches are disjoint (``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from taskflow.adapters.cancelling import stop_if_cancelled
from taskflow.domain.retention import Cutoffs
from taskflow.domain.services import RetentionService
from taskflow.entrypoints.sweeper import run_step

log = logging.getLogger("taskflow.retention")

#: Seconds between the end of one pass and the start of the next.
PRUNE_INTERVAL = 60.0
#: A long pass reports how far it got at least this often, in seconds.
PROGRESS_EVERY = 10.0
#: The share of a pass's time spent deleting: after a batch that took t seconds, the pass
#: rests t * (1 - DUTY) / DUTY, so that it leaves the database to the hot path most of the time
#: (docs/performance.md, "Issue 11 — retention").
DUTY = 0.25


class Pruner:
    def __init__(self, service: RetentionService, *, duty: float = DUTY) -> None:
        self._service = service
        self._rest = (1 - duty) / duty  # seconds of rest per second of deleting

    async def prune(self) -> int:
        """One pass, unless another process is making one: delete what the cutoffs of now let
        go; returns how many tasks."""
        async with self._service.alone() as alone:
            return await self._pass() if alone else 0

    async def _pass(self) -> int:
        cutoffs = self._service.cutoffs()
        started = reported = time.monotonic()
        deleted = batches = 0
        while True:
            batch_started = time.monotonic()
            count = await self._service.prune_batch(cutoffs)
            deleted, batches = deleted + count, batches + 1
            stop_if_cancelled()  # a backlog's batches must not hold a shutdown (decision 39)
            if count < self._service.batch:
                break
            if time.monotonic() - reported >= PROGRESS_EVERY:
                reported = time.monotonic()
                log.info("retention pruning", extra=_facts(cutoffs, deleted, batches, started))
            await asyncio.sleep((time.monotonic() - batch_started) * self._rest)
        if deleted:
            log.info("retention pruned", extra=_facts(cutoffs, deleted, batches, started))
        return deleted

    async def run(self, interval: float = PRUNE_INTERVAL) -> None:
        """A pass now, then one every ``interval`` seconds, until cancelled."""
        if self._service.retention.keeps_everything:
            log.info("retention is off: finished tasks are kept for ever")
            return
        while True:
            await run_step(self.prune)
            await asyncio.sleep(interval)


def _facts(cutoffs: Cutoffs, deleted: int, batches: int, started: float) -> dict[str, Any]:
    return {
        "tasks": deleted,
        "batches": batches,
        "cutoff": None if cutoffs.default is None else cutoffs.default.isoformat(),
        "cutoffs_by_queue": {
            queue: None if cutoff is None else cutoff.isoformat()
            for queue, cutoff in cutoffs.by_queue.items()
        },
        "duration_s": round(time.monotonic() - started, 3),
    }


def start_pruning(service: RetentionService) -> asyncio.Task[None]:
    """The retention job of this process, as a background task; ``stop_pruning`` ends it."""
    return asyncio.create_task(Pruner(service).run(), name="taskflow-retention")


async def stop_pruning(job: asyncio.Task[None]) -> None:
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
