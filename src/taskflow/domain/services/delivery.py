"""Delivering completion webhooks: one pass over the callbacks that are due (decision 23)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from uuid import UUID

from taskflow.domain.deliveries import Delivery, DeliveryPolicy, DueCallback
from taskflow.domain.model import Task
from taskflow.domain.ports import CallbackStore, Clock, WebhookSender


class DeliveryService:
    """Finds the final tasks whose webhook is due, sends each, records each try.

    ``render`` is the task's JSON as the API shows it (the body of the message). A try that
    fails is retried per ``policy``; ``lease_seconds`` must exceed the longest a try can take,
    since another deliverer may take a callback whose lease ran out.
    """

    def __init__(
        self,
        *,
        store: CallbackStore,
        sender: WebhookSender,
        render: Callable[[Task], bytes],
        clock: Clock,
        policy: DeliveryPolicy,
        rand: Callable[[], float],
        lease_seconds: float,
    ) -> None:
        self._store = store
        self._sender = sender
        self._render = render
        self._clock = clock
        self._policy = policy
        self._rand = rand
        self._lease_seconds = lease_seconds

    async def deliver_due(self, *, limit: int = 50) -> list[tuple[UUID, Delivery]]:
        """Send up to ``limit`` due messages at once; returns the tries recorded, by task."""
        tried = await asyncio.gather(*(self.deliver(due) for due in await self.claim(limit)))
        return [delivery for delivery in tried if delivery is not None]

    async def claim(self, limit: int) -> list[DueCallback]:
        """Up to ``limit`` due messages, leased to this deliverer for ``lease_seconds``."""
        return await self._store.claim_due(
            now=self._clock.now(), limit=limit, lease_seconds=self._lease_seconds
        )

    async def deliver(self, due: DueCallback) -> tuple[UUID, Delivery] | None:
        """Send one message and record the try (None when its lease was lost meanwhile)."""
        at = self._clock.now()
        sent = await self._sender.send(due.url, self._render(due.task), message_id=due.message_id)
        delivery = Delivery(due.attempt, at, sent.status_code, sent.problem())
        retry_at = None
        if not sent.ok:
            retry_at = self._policy.retry_at(due, now=self._clock.now(), rand=self._rand())
            if retry_at is None:
                gave_up = f"{delivery.error}; given up after {due.tries + 1} tries"
                delivery = replace(delivery, error=gave_up)
        recorded = await self._store.record(due, delivery, retry_at=retry_at)
        return (due.task.id, delivery) if recorded else None
