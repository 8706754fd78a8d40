"""The scheduler loop that every worker process (and ``taskflow dev``) runs beside its work.

Several at once are safe: the store enqueues each tick once (decision 22). Each loop sleeps
until the next tick of any schedule, at most ``MAX_SLEEP`` (so a resume or a clock change is
noticed), so N workers cost N small transactions per tick, not a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskflow.adapters.prometheus import Metrics
from taskflow.containers import Container
from taskflow.domain.ports import Clock
from taskflow.domain.services import SchedulePass, ScheduleService
from taskflow.entrypoints.logs import task_facts
from taskflow.entrypoints.sweeper import OUTAGES

log = logging.getLogger("taskflow.scheduler")

#: The longest sleep between two passes, in seconds.
MAX_SLEEP = 30.0
#: After a failed pass (store or queue down), the wait before the next, doubling up to MAX_SLEEP.
RETRY_SLEEP = 1.0


class Scheduler:
    def __init__(
        self, service: ScheduleService, clock: Clock, metrics: Metrics | None = None
    ) -> None:
        self._service = service
        self._clock = clock
        self._metrics = metrics or Metrics()

    async def run_once(self) -> SchedulePass:
        """One pass: enqueue what is due, and log it."""
        done = await self._service.run_due()
        self._metrics.submitted(task for _, _, task in done.enqueued)
        for name, tick, task in done.enqueued:
            log.info(
                "periodic task enqueued",
                extra={**task_facts(task), "schedule": name, "tick": tick.isoformat()},
            )
        for skipped in done.skipped:
            log.warning(
                "periodic ticks older than the catch-up window skipped",
                extra={
                    "schedule": skipped.name,
                    "first_skipped": skipped.first.isoformat(),
                    "window_start": skipped.until.isoformat(),
                },
            )
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a store or queue outage is waited out."""
        backoff = RETRY_SLEEP
        while not stop.is_set():
            try:
                done = await self.run_once()
            except OUTAGES as exc:
                log.warning("scheduler pass skipped", extra={"error": str(exc)})
                pause, backoff = backoff, min(backoff * 2, MAX_SLEEP)
            except Exception:
                log.exception("scheduler pass failed")
                pause, backoff = backoff, min(backoff * 2, MAX_SLEEP)
            else:
                backoff = RETRY_SLEEP
                pause = self._until(done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    def _until(self, done: SchedulePass) -> float:
        if done.next_at is None:
            return MAX_SLEEP
        seconds = (done.next_at - self._clock.now()).total_seconds()
        return min(max(seconds, 0.0), MAX_SLEEP)


def start_scheduler(container: Container, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The scheduler loop of this process, or None when the Registry has no schedule."""
    service = container.schedule_service()
    if not service.timetables:
        return None
    scheduler = Scheduler(service, container.clock(), container.metrics())
    return asyncio.create_task(scheduler.run(stop))
