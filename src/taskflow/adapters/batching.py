"""Group commit: many concurrent single calls carried out as one bulk call.

Callers that arrive while a bulk call is in flight wait together for the next one, so under
load each round trip carries as many items as arrived during the previous one, and an idle
system still answers the first caller at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: The bulk call answers each item with None (done) or the exception that item's caller raises.
Bulk = Callable[[Sequence[T]], Awaitable[Sequence[BaseException | None]]]


class Coalescer(Generic[T]):
    def __init__(self, bulk: Bulk[T], *, max_batch: int = 500) -> None:
        self._bulk = bulk
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # A cancelled caller cancels only its own future: its item stays in the batch, which
        # the flusher (a task of its own) writes anyway.
        await future

    async def _flush(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                outcomes = await self._bulk([item for item, _ in batch])
            except BaseException as exc:  # every caller of the batch learns of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)
