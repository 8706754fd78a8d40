"""The delivery loop of completion webhooks, run by every worker process (decision 23).

It polls: every ``POLL_SECONDS`` (and at once again after a full batch) it asks the store for
the callbacks that are due, through a partial index that holds only open callbacks, so a
deployment that uses no webhooks pays one cheap query a second per worker, and only when
TASKFLOW_WEBHOOK_SECRET is set; nothing is added to the path of a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec

from taskflow.containers import Container
from taskflow.domain.model import Task
from taskflow.domain.services.delivery import DeliveryService
from taskflow.entrypoints.http.schemas import TaskOut
from taskflow.entrypoints.sweeper import run_step

log = logging.getLogger("taskflow.webhooks")

#: Seconds between two looks for due webhooks: about how late a webhook may start.
POLL_SECONDS = 1.0
BATCH = 50

_encode = msgspec.json.Encoder().encode


def render(task: Task) -> bytes:
    """A webhook's body: the task's JSON exactly as ``GET /api/tasks/{id}`` shows it."""
    return _encode(TaskOut.from_task(task))


class Deliverer:
    def __init__(self, service: DeliveryService, *, interval: float = POLL_SECONDS) -> None:
        self._service = service
        self._interval = interval
        self._full = False

    async def deliver(self) -> None:
        """One pass: send the due webhooks, at most a batch of them."""
        tried = await self._service.deliver_due(limit=BATCH)
        self._full = len(tried) >= BATCH
        for task_id, delivery in tried:
            if delivery.error is None:
                log.info(
                    "webhook delivered",
                    extra={"task_id": str(task_id), "attempt": delivery.attempt},
                )
            else:
                log.warning(
                    "webhook not delivered",
                    extra={
                        "task_id": str(task_id),
                        "attempt": delivery.attempt,
                        "status_code": delivery.status_code,
                        "error": delivery.error,
                    },
                )

    async def run(self) -> None:
        """Deliver until cancelled; an outage is waited out like the sweep's."""
        while True:
            await run_step(self.deliver)
            if not self._full:
                await asyncio.sleep(self._interval)


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
