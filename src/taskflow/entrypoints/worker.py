"""The worker: claims tasks, runs their handlers, reports outcomes, keeps leases alive.

``run_once`` is one testable step (claim into free slots and start the handlers);
``run_forever`` only loops, renews leases, sweeps, and shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from taskflow.adapters.cancelling import stop_if_cancelled
from taskflow.adapters.prometheus import Metrics
from taskflow.domain.flow import Popped
from taskflow.domain.model import Task
from taskflow.domain.ports import CancelNotices, Renewal
from taskflow.domain.services import ExecutionService
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.attempt import AttemptRunner, Backoff, Run
from taskflow.entrypoints.lease_keeper import LeaseKeeper
from taskflow.entrypoints.logs import EventLog, FirstThrottles, task_facts
from taskflow.entrypoints.prefetch import Prefetch
from taskflow.entrypoints.presence import Pauses, Presence
from taskflow.entrypoints.sweeper import OUTAGES, Sweeper, log_queue_warnings, run_step
from taskflow.registry import Registry

if TYPE_CHECKING:
    from taskflow.adapters.otel.spans import Tracing

log = logging.getLogger("taskflow.worker")
events = EventLog(log)

#: Name prefix of the threads that run plain `def` handlers.
HANDLER_THREAD = "taskflow-handler"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    queues: Sequence[str] = ("default",)
    concurrency: int = 16
    heartbeat_seconds: float = 10.0
    sweep_seconds: float = 5.0
    shutdown_grace_seconds: float = 30.0
    poll_seconds: float = 1.0
    prefetch: int = 240  # at most this many tasks claimed ahead of free slots (see prefetch)
    stubborn_seconds: float = 5.0  # a handler running this long after its cancel ignores it


class Worker:
    def __init__(
        self,
        service: ExecutionService,
        registry: Registry,
        options: WorkerOptions,
        lease_keeper: LeaseKeeper | None = None,
        *,
        cancel_notices: CancelNotices | None = None,
        prefetch: Prefetch | None = None,
        fleet: FleetService | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._service = service
        self._metrics = metrics or Metrics()
        self._keeper = lease_keeper
        self._notices = cancel_notices
        self._options = options
        self._running: dict[UUID, Run] = {}
        # Listed in the fleet by a heartbeat of its own, and told which queues are paused.
        self._presence = None
        if fleet is not None:
            self._presence = Presence(
                fleet,
                worker_id=self.id,
                queues=options.queues,
                concurrency=options.concurrency,
                running=self._running.keys,
            )
        self._pauses = Pauses() if self._presence is None else self._presence.pauses
        self._pauses.on_change = self._hand_back_paused
        self._settling = 0  # runs in _running whose handler is done and outcome being written
        self._sweeper = Sweeper(service, self._metrics)
        self._slot_freed = asyncio.Event()
        self._prefetch = Prefetch(options.prefetch) if prefetch is None else prefetch
        # Outcomes written at once: as many as one claim brings, so that they share a commit.
        self._settle_bound = max(options.concurrency, self._prefetch.cap)
        self._stopping = False  # shutting down: nothing more is started
        self.left_running = False  # a handler ignored its cancel: the process must not wait
        self._executor = ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix=HANDLER_THREAD
        )
        self._throttles = FirstThrottles()
        self._attempts = AttemptRunner(
            service, registry, self._executor, self._settling_started, self._metrics, tracing
        )

    @property
    def id(self) -> str:
        return self._service.worker_id

    @property
    def running(self) -> list[Task]:
        return [run.task for run in self._running.values()]

    @property
    def prefetched(self) -> list[Task]:
        """Tasks claimed ahead of free slots, in the order they will start."""
        return list(self._prefetch)

    @property
    def free_slots(self) -> int:
        """How many more tasks to claim now.

        ``concurrency`` bounds the handlers running at once. A run whose handler is done no
        longer holds a slot while its outcome is written, so the next claim overlaps that write
        (the claim and the group-committed save each wait on a commit). At most as many such
        writes are outstanding as one claim may bring (the larger of ``concurrency`` and the
        prefetch's cap), so that a claim's worth of outcomes can share one commit.
        """
        limit = self._options.concurrency
        handling = len(self._running) - self._settling
        return min(limit - handling, limit + self._settle_bound - len(self._running))

    async def run_once(self, timeout: float = 0.0) -> int:
        """Claim up to the free slots' worth of tasks and what the prefetch has room for,
        start as many as slots are free and keep the rest; returns how many were claimed."""
        wanted = max(0, self.free_slots) + self._prefetch.room()
        if wanted <= 0:
            return 0
        queues = self._pauses.serving(self._options.queues)
        if not queues:  # every queue of this worker is paused
            await self._pauses.changed(timeout)
            return 0
        claim = await self._service.claim_batch(
            queues, limit=wanted, timeout=timeout, paused=self._pauses.now
        )
        if claim.unknown:
            log.warning(
                "dropped queued ids that no task has (is another deployment using this Redis "
                "prefix?)",
                extra={"ids": [str(i) for i in claim.unknown[:10]], "count": len(claim.unknown)},
            )
        if claim.throttled:
            self._held_back(claim.throttled)
        if self._keeper is not None:
            self._keeper.track({t.id: t.lease.token for t in claim.tasks if t.lease is not None})
        if log.isEnabledFor(logging.INFO):  # the facts cost more than a no-op handler
            for task in claim.tasks:
                events.info("task claimed", task_facts(task))
        self._prefetch.put(claim.tasks)
        if self._pauses.paused:  # claimed just as a pause landed: handed back, not run
            self._hand_back_paused()
        self._start_prefetched()
        return len(claim.tasks)

    def _held_back(self, throttled: Sequence[tuple[Popped, float]]) -> None:
        self._metrics.throttled(held for held, _ in throttled)
        if not log.isEnabledFor(logging.INFO):
            return
        # INFO the first time an attempt is held back, DEBUG when it is again: one waiting for
        # a concurrency slot comes back every 0.1-0.2 s, and a backlog would flood the log.
        every_time = log.isEnabledFor(logging.DEBUG)
        for held, wait in throttled:
            first = self._throttles.first_of(held.id, held.attempts)
            if first or every_time:
                facts = {**task_facts(held, worker_id=self.id), "wait": round(wait, 3)}
                (events.info if first else events.debug)("task throttled", facts)

    async def run_forever(self, stop: asyncio.Event, force: asyncio.Event | None = None) -> None:
        """Work until ``stop`` is set, then finish or hand back (release) what runs."""
        force = force or asyncio.Event()
        background = [
            # The first sweep runs at once: it refills a queue that starts empty.
            asyncio.create_task(self._sweeper.run(self._options.sweep_seconds)),
        ]
        if self._notices is not None:
            background.append(asyncio.create_task(self._listen(self._notices)))
        if self._presence is not None:
            await self._presence.start()
            background.append(asyncio.create_task(self._presence.run()))
        if self._keeper is not None:
            self._keeper.start(self.renewed, asyncio.get_running_loop())
        else:
            background.append(
                asyncio.create_task(self._every(self._options.heartbeat_seconds, self.heartbeat))
            )
        log.info(
            "worker started", extra={"worker_id": self.id, "queues": list(self._options.queues)}
        )
        await log_queue_warnings(self._service)
        try:
            await self._claim_until(stop)
            await self._shutdown(force)
        finally:
            for job in background:
                job.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._presence is not None:
                await self._presence.leave()
            if self._keeper is not None:
                await asyncio.to_thread(self._keeper.stop)
            self._executor.shutdown(wait=False, cancel_futures=True)
            log.info("worker stopped", extra={"worker_id": self.id})

    async def heartbeat(self) -> None:
        """Renew every running lease on this loop; abandon attempts whose lease is gone.

        Used when no `LeaseKeeper` thread does it (tests, and the embedded `taskflow dev`).
        """
        held = [run.task for run in self._running.values() if not run.settling]
        leases = {
            task.id: task.lease.token for task in [*held, *self._prefetch] if task.lease is not None
        }
        if leases:
            self.renewed(leases, await self._service.renew(leases))

    def renewed(self, leases: Mapping[UUID, UUID], renewal: Renewal) -> None:
        """Act on a renewal of ``leases``: abandon the attempts whose lease is gone, and stop
        those whose cancel was requested."""
        for task_id in leases.keys() - renewal.held:
            self.abandon(task_id)
        for task_id in renewal.cancel_requested:
            self.cancel(task_id)

    def cancel(self, task_id: UUID) -> None:
        """A cancel of the task was requested: if this worker runs it, stop its handler and
        record the attempt CANCELLED. Otherwise nothing: the task is another worker's."""
        run = self._running.get(task_id)
        if run is not None:
            self._attempts.cancel(run)
            return
        task = self._prefetch.remove(task_id)
        if task is not None:  # claimed ahead, not started: acknowledge without running it
            self._begin(Run(task, cancel_requested=True))

    def abandon(self, task_id: UUID) -> None:
        """The attempt's lease is gone: stop its handler and write nothing of it."""
        task = self._prefetch.remove(task_id)
        if task is not None:
            if self._keeper is not None:
                self._keeper.forget(task_id)
            log.warning("lease lost, attempt abandoned", extra=task_facts(task))
            return
        run = self._running.get(task_id)
        if run is None or run.settling or run.job is None:
            return
        run.lost = True
        run.job.cancel()
        log.warning("lease lost, attempt abandoned", extra=task_facts(run.task))

    async def sweep(self) -> None:
        """Reap expired leases (dead workers) and re-dispatch what the queue lost."""
        await self._sweeper.sweep()

    async def wait_idle(self) -> None:
        """Wait until no handler is running (for tests and shutdown)."""
        while self._running:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    # -- the loop -------------------------------------------------------------------------

    async def _claim_until(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        # Waiting for a free slot happens once per claim when the worker is busy: one event,
        # which `stop` sets too, costs far less than racing two waits.
        relay = asyncio.create_task(_relay(stop, self._slot_freed))
        try:
            await self._claim_loop(stop, backoff)
        finally:
            relay.cancel()

    async def _claim_loop(self, stop: asyncio.Event, backoff: Backoff) -> None:
        while not stop.is_set():
            if self.free_slots <= 0 and self._prefetch.room() <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                await self.run_once(timeout=self._options.poll_seconds)
            except Exception as exc:
                # An outage is expected and waited out; anything else is a bug worth a
                # traceback, but still no reason to stop serving the other queues' work.
                delay = backoff.next()
                extra = {"error": str(exc), "retry_in": delay}
                if isinstance(exc, OUTAGES):
                    log.warning("claim failed, retrying", extra=extra)
                else:
                    log.exception("claim failed unexpectedly, retrying", extra=extra)
                await _first(asyncio.sleep(delay), stop.wait())
            else:
                backoff.reset()

    async def _shutdown(self, force: asyncio.Event) -> None:
        self._stopping = True
        for task in self._prefetch.drain():  # claimed ahead, never started: hand them back
            self._begin(Run(task, hand_back=True))
        jobs = [run.job for run in self._running.values() if run.job is not None]
        if jobs:
            log.info("finishing running tasks", extra={"tasks": len(jobs)})
            await _first(
                asyncio.wait(jobs, timeout=self._options.shutdown_grace_seconds), force.wait()
            )
        # A settling run has finished its handler: cancelling it would abort the outcome's
        # write and leave the lease to expire into a counted WorkerLost failure.
        for run in list(self._running.values()):
            if run.job is not None and not run.settling:
                run.job.cancel()
        runs = list(self._running.values())
        self.left_running = await self._attempts.outlast(runs, bound=self._options.stubborn_seconds)

    async def _listen(self, notices: CancelNotices) -> None:
        """Act on cancel notices as they come; a lost one waits for the next lease renewal."""
        backoff = Backoff()
        while True:
            try:
                async for task_id in notices.cancellations():
                    backoff.reset()
                    self.cancel(task_id)
            except OUTAGES as exc:
                stop_if_cancelled(exc)
                log.warning("cancel notices unavailable, resubscribing", extra={"error": str(exc)})
            except Exception as exc:
                stop_if_cancelled(exc)
                log.exception("cancel notices failed unexpectedly, resubscribing")
            stop_if_cancelled()  # the stream may have ended quietly on the cancel
            await asyncio.sleep(backoff.next())

    async def _every(self, seconds: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            await run_step(step)

    def _hand_back_paused(self) -> None:
        """Release the tasks claimed ahead from queues paused now; what runs finishes."""
        for task in [t for t in self._prefetch if t.queue in self._pauses.paused]:
            if self._prefetch.remove(task.id) is not None:
                self._begin(Run(task, hand_back=True))

    # -- one attempt ----------------------------------------------------------------------

    def _start_prefetched(self) -> None:
        while not self._stopping and self.free_slots > 0:
            task = self._prefetch.take()
            if task is None:
                return
            self._begin(Run(task))

    def _begin(self, run: Run) -> None:
        self._running[run.task.id] = run
        run.job = asyncio.create_task(self._execute(run), name=f"task-{run.task.id}")

    async def _execute(self, run: Run) -> None:
        try:
            await self._attempts.run(run)
        finally:
            del self._running[run.task.id]
            if run.settling:
                self._settling -= 1
            if self._keeper is not None:
                self._keeper.forget(run.task.id)
            self._start_prefetched()
            self._slot_freed.set()

    def _settling_started(self, run: Run) -> None:
        # The handler is done: its slot can take the next task while the outcome is written.
        self._settling += 1
        self._prefetch.finished()
        self._start_prefetched()
        self._slot_freed.set()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _first(*awaitables: Awaitable[Any]) -> None:
    """Wait until the first of ``awaitables`` finishes; cancel the others."""
    jobs = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
