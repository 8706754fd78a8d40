"""The messages of one Redis pub/sub channel, on a subscriber connection of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio

from taskflow.adapters.cancelling import stop_if_cancelled
from taskflow.adapters.redis import mapped_errors

#: How long one wait for a message lasts; the subscription's health is checked between waits.
LISTEN_SECONDS = 1.0


async def messages(client: redis.asyncio.Redis, channel: str) -> AsyncIterator[bytes | str]:
    """Each message's data as it comes, until the consumer stops or its task is cancelled.

    The subscribe may swallow a cancel that lands as it completes (see ``adapters.cancelling``):
    every wait starts by asking, or a worker cancelling its listener would wait for ever.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        with mapped_errors():
            await pubsub.subscribe(channel)
        while True:
            stop_if_cancelled()
            with mapped_errors():
                message = await pubsub.get_message(timeout=LISTEN_SECONDS)
            if message is not None and message.get("type") == "message":
                yield message["data"]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
