"""Turns at a job within one process: what a store of one process needs to run a job alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class LocalTurns:
    """An in-process lock per job name, tried, never waited for."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def exclusively(self, job: str) -> AsyncIterator[bool]:
        lock = self._locks.setdefault(job, asyncio.Lock())
        if lock.locked():
            yield False
            return
        async with lock:
            yield True
