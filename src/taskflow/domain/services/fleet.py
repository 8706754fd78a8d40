"""Queues and workers for operators: who is alive, what each queue holds, pause and resume.

Workers list themselves with ``beat`` on a task of their own, once an interval, and never per
task (decision 25); the queue figures are read when asked, from the store (what runs, what
finished lately, what is paused) and from the dispatch queue (what waits).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from taskflow.domain.errors import InvalidQuery, QueueUnavailable
from taskflow.domain.fleet import (
    MISSED_BEATS,
    THROUGHPUT_WINDOW_SECONDS,
    QueueDepth,
    QueueStats,
    Throughput,
    WorkerInfo,
    consumers_of,
)
from taskflow.domain.flow import FlowPolicy
from taskflow.domain.limits import queue_name_problem
from taskflow.domain.ports import Clock, PauseNotices, QueueGauge, QueueStore, WorkerRegistry

_NO_DEPTH = QueueDepth()
_NO_THROUGHPUT = Throughput()


class FleetService:
    """The live workers and the queues' state; pausing and resuming queues."""

    def __init__(
        self,
        *,
        workers: WorkerRegistry,
        store: QueueStore,
        gauge: QueueGauge,
        clock: Clock,
        flow: FlowPolicy,
        notices: PauseNotices | None = None,
        beat_seconds: float = 5.0,
    ) -> None:
        self._workers = workers
        self._store = store
        self._gauge = gauge
        self.clock = clock
        self._flow = flow
        self._notices = notices
        self.beat_seconds = beat_seconds

    # -- operators ------------------------------------------------------------------------

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, by id."""
        return await self._workers.live()

    async def queues(self) -> list[QueueStats]:
        """Every queue with work not finished, finished lately, limits configured, a live
        consumer, or paused; by name."""
        return await self._stats(None)

    async def queue(self, name: str) -> QueueStats:
        """One queue's figures (all zero for a queue nobody has used); InvalidQuery for a
        malformed name."""
        _check(name)
        [stats] = await self._stats(name)
        return stats

    async def pause(self, queue: str) -> QueueStats:
        """Workers start nothing more from ``queue`` (within about a second); it still takes
        submissions, and what runs finishes. Idempotent."""
        return await self._set_paused(queue, True)

    async def resume(self, queue: str) -> QueueStats:
        """Workers start ``queue``'s tasks again. Idempotent."""
        return await self._set_paused(queue, False)

    # -- workers --------------------------------------------------------------------------

    async def beat(self, worker: WorkerInfo) -> None:
        """List ``worker`` as live until it misses ``MISSED_BEATS`` beats."""
        await self._workers.beat(worker, ttl_seconds=MISSED_BEATS * self.beat_seconds)

    async def leave(self, worker_id: str) -> None:
        await self._workers.leave(worker_id)

    async def paused(self) -> frozenset[str]:
        """The paused queues, as the store has them."""
        return await self._store.paused()

    def pause_notices(self) -> AsyncIterator[tuple[str, bool]] | None:
        """(queue, paused) as operators change them; None when there is no channel."""
        return None if self._notices is None else self._notices.pauses()

    # -- the figures ----------------------------------------------------------------------

    async def _set_paused(self, queue: str, paused: bool) -> QueueStats:
        _check(queue)
        await self._store.set_paused(queue, paused, now=self.clock.now())
        if self._notices is not None:
            # Stored: without the notice, the workers read it at their next heartbeat.
            with contextlib.suppress(QueueUnavailable):
                await self._notices.notify_pause(queue, paused)
        return await self.queue(queue)

    async def _stats(self, only: str | None) -> list[QueueStats]:
        now = self.clock.now()
        since = now - timedelta(seconds=THROUGHPUT_WINDOW_SECONDS)
        depths = await self._gauge.depths()
        processing = await self._store.processing()
        throughput = await self._store.throughput(since)
        paused = await self._store.paused()
        consumers = consumers_of(await self._workers.live())
        if only is not None:
            names = {only}
        else:
            names = {*depths, *processing, *throughput, *self._flow.queues, *consumers, *paused}
        found: list[QueueStats] = []
        for name in sorted(names):
            depth = depths.get(name, _NO_DEPTH)
            done = throughput.get(name, _NO_THROUGHPUT)
            limits = self._flow.queues.get(name)
            age = None
            if depth.oldest_ready_at is not None:
                age = max(0.0, (now - depth.oldest_ready_at).total_seconds())
            found.append(
                QueueStats(
                    name=name,
                    ready=depth.ready,
                    delayed=depth.delayed,
                    processing=processing.get(name, 0),
                    oldest_ready_age_seconds=age,
                    succeeded_last_minute=done.succeeded,
                    failed_last_minute=done.failed,
                    rate_limit=None if limits is None or limits.rate is None else str(limits.rate),
                    concurrency=None if limits is None else limits.concurrency,
                    paused=name in paused,
                    consumers=consumers.get(name, 0),
                )
            )
        return found


def _check(queue: str) -> None:
    problem = queue_name_problem(queue)
    if problem is not None:
        raise InvalidQuery(f"queue name {queue!r}: {problem}", field="name")
