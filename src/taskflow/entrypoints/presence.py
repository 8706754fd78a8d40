"""A worker's place in the fleet: its heartbeat, and the paused queues it must not start.

The heartbeat is one small write an interval (TASKFLOW_WORKER_HEARTBEAT_SECONDS) on a task of
its own, never a write per task: the record says what the worker is and what it runs now.
The same beat reads the paused queues from the store, a backstop for the pause notices that
tell the worker within moments (decision 25).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from taskflow.adapters.cancelling import stop_if_cancelled
from taskflow.domain.fleet import WorkerInfo
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.attempt import Backoff
from taskflow.entrypoints.sweeper import OUTAGES, run_step

log = logging.getLogger("taskflow.worker")

VERSION = importlib.metadata.version("taskflow")


class Pauses:
    """The worker's queues that are paused now; empty (and free to test) when none is."""

    def __init__(self, queues: Sequence[str] = ()) -> None:
        self.paused: frozenset[str] = frozenset()
        self._mine = frozenset(queues)
        self._changed = asyncio.Event()
        self.on_change: Callable[[], None] | None = None

    def now(self) -> frozenset[str]:
        return self.paused

    def serving(self, queues: Sequence[str]) -> Sequence[str]:
        """``queues`` without the paused ones, in order (``queues`` itself when none is)."""
        if not self.paused:
            return queues
        return [q for q in queues if q not in self.paused]

    def update(self, paused: Iterable[str]) -> None:
        mine = self._mine.intersection(paused)
        if mine == self.paused:
            return
        if mine - self.paused:
            log.info("queues paused", extra={"queues": sorted(mine - self.paused)})
        if self.paused - mine:
            log.info("queues resumed", extra={"queues": sorted(self.paused - mine)})
        self.paused = mine
        self._changed.set()
        if self.on_change is not None:
            self.on_change()

    def apply(self, queue: str, paused: bool) -> None:
        self.update(self.paused | {queue} if paused else self.paused - {queue})

    async def changed(self, timeout: float) -> None:
        """Returns when the paused queues change, or after ``timeout`` seconds."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class Presence:
    """Beats for one worker until cancelled; `leave` unlists it at once."""

    def __init__(
        self,
        fleet: FleetService,
        *,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        running: Callable[[], Iterable[UUID]],
    ) -> None:
        self._fleet = fleet
        self._clock = fleet.clock
        self._id = worker_id
        self._queues = tuple(queues)
        self._concurrency = concurrency
        self._running = running
        self._started_at = self._clock.now()
        self._notices = 0  # notices heard: a store read they overtook is not applied
        self.pauses = Pauses(queues)

    async def start(self) -> None:
        """The first beat, before the worker claims anything: a queue paused before the worker
        started must be known before its first pop."""
        await run_step(self.beat)

    async def run(self) -> None:
        """Listen for pause notices, and beat every interval after the first (`start`)."""
        listening = asyncio.create_task(self._listen())
        try:
            while True:
                await asyncio.sleep(self._fleet.beat_seconds)
                await run_step(self.beat)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    async def beat(self) -> None:
        """List the worker as it is now, and read which queues are paused."""
        now = self._clock.now()
        await self._fleet.beat(
            WorkerInfo(
                id=self._id,
                host=socket.gethostname(),
                pid=os.getpid(),
                version=VERSION,
                queues=self._queues,
                concurrency=self._concurrency,
                running=tuple(self._running()),
                started_at=self._started_at,
                last_seen_at=now,
            )
        )
        heard = self._notices
        paused = await self._fleet.paused()
        if heard == self._notices:
            self.pauses.update(paused)

    async def leave(self) -> None:
        """Unlisted at once: a clean stop need not wait for three missed beats."""
        try:
            await self._fleet.leave(self._id)
        except OUTAGES as exc:
            log.warning("could not unlist the worker", extra={"error": str(exc)})

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            notices = self._fleet.pause_notices()
            if notices is None:
                return
            try:
                async for queue, paused in notices:
                    backoff.reset()
                    self._notices += 1
                    self.pauses.apply(queue, paused)
            except OUTAGES as exc:
                stop_if_cancelled(exc)
                log.warning("pause notices unavailable, resubscribing", extra={"error": str(exc)})
            except Exception as exc:
                stop_if_cancelled(exc)
                log.exception("pause notices failed unexpectedly, resubscribing")
            stop_if_cancelled()  # the stream may have ended quietly on the cancel
            await asyncio.sleep(backoff.next())
