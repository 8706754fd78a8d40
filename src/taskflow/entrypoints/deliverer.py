"""The delivery loop of completion webhooks, run by every worker process (decision 23).

It polls: every ``POLL_SECONDS`` it asks the store for the callbacks that are due, through a
partial index that holds only open callbacks, so a deployment that uses no webhooks pays one
cheap query a second per worker, and only when TASKFLOW_WEBHOOK_SECRET is set; nothing is
added to the path of a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec

from taskflow.containers import Container
from taskflow.domain.deliveries import DueCallback
from taskflow.domain.model import Task
from taskflow.domain.services.delivery import DeliveryService
from taskflow.entrypoints.http.schemas import TaskOut
from taskflow.entrypoints.sweeper import OUTAGES, run_step

log = logging.getLogger("taskflow.webhooks")

#: Seconds between two looks for due webhooks: about how late a webhook may start.
POLL_SECONDS = 1.0
BATCH = 50

_encode = msgspec.json.Encoder().encode


def render(task: Task) -> bytes:
    """A webhook's body: the task's JSON exactly as ``GET /api/tasks/{id}`` shows it."""
    return _encode(TaskOut.from_task(task))


class Deliverer:
    """Sends the due webhooks, at most ``BATCH`` at once, each as soon as it is claimed: a
    slow receiver holds one slot for its timeout, not the whole loop."""

    def __init__(self, service: DeliveryService, *, interval: float = POLL_SECONDS) -> None:
        self._service = service
        self._interval = interval
        self._sending: set[asyncio.Task[None]] = set()

    async def deliver(self) -> None:
        """One pass: claim what is due, as many as there are free slots, and start sending."""
        room = BATCH - len(self._sending)
        if room <= 0:
            return
        for due in await self._service.claim(room):
            job = asyncio.create_task(self._send(due))
            self._sending.add(job)
            job.add_done_callback(self._sending.discard)

    async def _send(self, due: DueCallback) -> None:
        facts = {"task_id": str(due.task.id), "attempt": due.attempt}
        try:
            tried = await self._service.deliver(due)
        except OUTAGES as exc:  # not recorded: its lease runs out, and it is tried again
            log.warning("webhook try not recorded", extra={**facts, "error": str(exc)})
            return
        except Exception:
            log.exception("webhook try failed", extra=facts)
            return
        if tried is None:
            return
        _, delivery = tried
        if delivery.error is None:
            log.info("webhook delivered", extra=facts)
        else:
            facts |= {"status_code": delivery.status_code, "error": delivery.error}
            log.warning("webhook not delivered", extra=facts)

    async def run(self) -> None:
        """Deliver until cancelled; an outage is waited out like the sweep's."""
        try:
            while True:
                await run_step(self.deliver)
                await asyncio.sleep(self._interval)
        finally:
            for job in list(self._sending):
                job.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)


@contextlib.asynccontextmanager
async def delivering(container: Container) -> AsyncIterator[None]:
    """Run the delivery loop in the background while inside; nothing without a secret."""
    if container.settings().webhook_secret is None:
        yield
        return
    sender = container.webhook_sender()
    job = asyncio.create_task(Deliverer(container.delivery_service(render=render)).run())
    try:
        yield
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        await sender.close()
