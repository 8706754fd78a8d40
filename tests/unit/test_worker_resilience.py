"""A worker keeps serving through failures it did not expect: it logs them and backs off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from taskflow.entrypoints.loading import load_registry
from taskflow.entrypoints.worker import Worker, WorkerOptions


class TroubledQueue(InMemoryTaskQueue):
    """Its first pops and every settings check fail the way a dying connection does."""

    def __init__(self, failures: int) -> None:
        super().__init__(SystemClock())
        self.failures = failures

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")
        return await super().pop(queues, limit=limit, timeout=timeout)

    async def warnings(self) -> list[str]:
        raise RuntimeError("the connection went away")


async def test_a_worker_survives_unexpected_errors_and_keeps_working(caplog: Any) -> None:
    clock = SystemClock()
    repo, queue = InMemoryTaskRepository(clock), TroubledQueue(failures=2)
    registry = load_registry(None, debug_tasks=True)
    submitting = TaskService(
        repository=repo,
        queue=queue,
        types=registry,
        clock=clock,
        new_id=uuid.uuid4,
        retry_policy=RetryPolicy(),
    )
    task = await submitting.submit(SubmitTask(type="debug.echo", payload={"ok": True}))
    service = ExecutionService(
        repository=repo,
        queue=queue,
        clock=clock,
        rand=lambda: 0.5,
        worker_id="w",
        lease_seconds=30,
    )
    worker = Worker(service, registry, WorkerOptions(poll_seconds=0.05, sweep_seconds=60))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        async with asyncio.timeout(10):
            while (await repo.get(task.id)).status.value != "SUCCESS":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await running
    assert queue.failures == 0
    assert "claim failed unexpectedly" in caplog.text
    assert "could not check the queue's settings" in caplog.text
