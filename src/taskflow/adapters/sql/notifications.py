"""Hearing, on a connection of its own, the tasks that callers' transactions enqueued."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from taskflow.adapters.sql.tls import asyncpg_dsn
from taskflow.adapters.sql.transactional import CHANNEL

log = logging.getLogger("taskflow.enqueued")

OnIds = Callable[[list[UUID]], Awaitable[object]]
_RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


class EnqueuedListener:
    """LISTENs for enqueued ids and hands them to ``on_ids``; reconnects when the connection
    drops (the sweep's reconciler dispatches whatever was announced meanwhile)."""

    def __init__(self, database_url: str, on_ids: OnIds) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._on_ids = on_ids
        self._handling: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Listen until cancelled."""
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError() from exc  # the cancel, in the driver's words
                delay = _RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning(
                    "not listening for enqueued tasks, retrying",
                    extra={"error": str(exc), "retry_in": delay},
                )
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=5)
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        try:
            await conn.add_listener(CHANNEL, self._heard)
            await closed.wait()
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
        raise OSError("the listening connection closed")

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids = []
        for part in payload.split(","):
            with contextlib.suppress(ValueError):
                ids.append(UUID(part))
        if ids:
            job = asyncio.get_running_loop().create_task(self._hand_over(ids))
            self._handling.add(job)
            job.add_done_callback(self._handling.discard)

    async def _hand_over(self, ids: list[UUID]) -> None:
        try:
            await self._on_ids(ids)
        except Exception as exc:  # the reconciler dispatches them later
            log.warning("could not dispatch enqueued tasks", extra={"error": str(exc)})
