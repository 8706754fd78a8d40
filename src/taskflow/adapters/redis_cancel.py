"""Cancel notices on Redis pub/sub, on the channel ``P:cancel`` under the key prefix P.

Pub/sub keeps nothing: a worker that is not subscribed when a notice is published never sees
it. That is acceptable here, since the lease renewal carries every cancel request too; the
notice only makes the stop prompt (see docs/decisions/0014).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import redis.asyncio

from taskflow.adapters.redis import logger, mapped_errors, task_id_of
from taskflow.adapters.redis_pubsub import messages


class RedisCancelNotices:
    """`CancelNotices` on Redis pub/sub; one subscriber connection per `cancellations` call."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "taskflow") -> None:
        self._client = client
        self.channel = f"{prefix}:cancel"

    async def notify_cancel(self, task_id: UUID) -> None:
        with mapped_errors():
            await self._client.publish(self.channel, str(task_id))

    async def cancellations(self) -> AsyncIterator[UUID]:
        async for data in messages(self._client, self.channel):
            task_id = task_id_of(data)
            if task_id is None:
                logger.warning("dropped a cancel notice that is not a task id")
                continue
            yield task_id
