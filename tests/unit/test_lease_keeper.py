"""The lease keeper renews from its own thread and reports the leases it could not keep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import timedelta

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.model import Task
from taskflow.domain.ports import Renewal
from taskflow.domain.services import ExecutionService
from taskflow.entrypoints.lease_keeper import LeaseKeeper


async def _claimed(repo: InMemoryTaskRepository, lease_seconds: float) -> Task:
    now = SystemClock().now()
    task = Task.new(id=uuid.uuid4(), type="t", payload={}, now=now - timedelta(seconds=1))
    await repo.add(task)
    [claimed] = await repo.claim([task.id], worker_id="w", lease_seconds=lease_seconds)
    return claimed


class CountingRepository(InMemoryTaskRepository):
    """Counts the renewals asked of it (from the keeper's thread)."""

    renewals = 0

    async def renew_leases(
        self, leases: Mapping[uuid.UUID, uuid.UUID], *, lease_seconds: float
    ) -> Renewal:
        self.renewals += 1
        return await super().renew_leases(leases, lease_seconds=lease_seconds)


def _keeper(repo: InMemoryTaskRepository) -> LeaseKeeper:
    service = ExecutionService(
        repository=repo,
        queue=InMemoryTaskQueue(SystemClock()),
        clock=SystemClock(),
        rand=lambda: 0.5,
        worker_id="w",
        lease_seconds=60,
    )
    return LeaseKeeper(lambda: (service, repo.close), interval=0.02)


async def test_a_tracked_lease_is_renewed_from_the_keepers_thread() -> None:
    repo = InMemoryTaskRepository(SystemClock())
    task = await _claimed(repo, lease_seconds=5)
    assert task.lease is not None
    keeper = _keeper(repo)
    keeper.start(lambda *_: None, asyncio.get_running_loop())
    keeper.track({task.id: task.lease.token})
    try:
        for _ in range(1000):  # up to 10 s
            current = (await repo.get(task.id)).lease
            if current is not None and current.expires_at > task.lease.expires_at:
                break
            await asyncio.sleep(0.01)
    finally:
        await asyncio.to_thread(keeper.stop)
    renewed = await repo.get(task.id)
    assert renewed.lease is not None
    assert renewed.lease.expires_at - task.lease.expires_at > timedelta(seconds=50)


async def test_a_lease_it_cannot_keep_is_reported_on_the_loop_once() -> None:
    repo = CountingRepository(SystemClock())
    task = await _claimed(repo, lease_seconds=5)
    kept = await _claimed(repo, lease_seconds=5)  # renewed every round, so rounds go on
    assert kept.lease is not None
    lost: list[uuid.UUID] = []
    reported = asyncio.Event()

    def on_renewal(leases: Mapping[uuid.UUID, uuid.UUID], renewal: Renewal) -> None:
        lost.extend(leases.keys() - renewal.held)
        reported.set()

    keeper = _keeper(repo)
    keeper.start(on_renewal, asyncio.get_running_loop())
    keeper.track({task.id: uuid.uuid4()})  # not the task's token: as if another worker held it
    keeper.track({kept.id: kept.lease.token})
    try:
        async with asyncio.timeout(10):
            await reported.wait()
            rounds = repo.renewals
            # Several more renewal rounds (whose reports would have been scheduled by now):
            # no second report.
            while repo.renewals < rounds + 3:  # noqa: ASYNC110 - counted on another thread
                await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # let a report scheduled meanwhile run
    finally:
        await asyncio.to_thread(keeper.stop)
    assert lost == [task.id]
    assert await repo.get(task.id) == task  # nothing was changed
