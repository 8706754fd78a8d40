"""The delivery loop's step (entrypoints/deliverer.py) on the in-memory store: each message is
sent as soon as it is claimed, so a receiver that hangs holds up only its own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.domain.deliveries import DeliveryPolicy, Sent
from taskflow.domain.model import Lease, Task
from taskflow.domain.services.delivery import DeliveryService
from taskflow.entrypoints.deliverer import Deliverer, render
from tests.clocks import FakeClock

SLOW, FAST = "https://slow.example.com/hook", "https://fast.example.com/hook"


class HangingReceiver:
    """The slow host answers once ``go`` is set; the fast one at once."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.bodies: dict[str, bytes] = {}

    async def send(self, url: str, body: bytes, *, message_id: str) -> Sent:
        self.bodies[url] = body
        if url == SLOW:
            await self.go.wait()
        return Sent(200)


async def _finished_with_callback(repo: InMemoryTaskRepository, clock: FakeClock, url: str) -> Task:
    task = Task.new(id=uuid.uuid4(), type="t.x", payload={"url": url}, now=clock.now())
    await repo.callback_store().add([task], {task.id: url})
    running = task.claim(Lease(uuid.uuid4(), "w", clock.now()), now=clock.now())
    assert running.lease is not None
    await repo.save(running)
    done = running.succeed(running.lease.token, None, now=clock.now())
    await repo.save(done)
    return done


async def test_a_hanging_receiver_holds_up_only_its_own_message() -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    repo = InMemoryTaskRepository(clock)
    slow = await _finished_with_callback(repo, clock, SLOW)
    fast = await _finished_with_callback(repo, clock, FAST)
    receiver = HangingReceiver()
    service = DeliveryService(
        store=repo.callback_store(),
        sender=receiver,
        render=render,
        clock=clock,
        policy=DeliveryPolicy(),
        rand=lambda: 0.5,
        lease_seconds=60.0,
    )
    deliverer = Deliverer(service)
    store = repo.callback_store()

    await deliverer.deliver()
    for _ in range(100):  # let the sends run, without a clock
        if (await store.deliveries(fast.id))[1]:
            break
        await asyncio.sleep(0)
    assert [d.status_code for d in (await store.deliveries(fast.id))[1]] == [200]
    assert (await store.deliveries(slow.id))[1] == []
    await deliverer.deliver()  # the slow one is leased: not claimed twice
    receiver.go.set()
    for _ in range(100):
        if (await store.deliveries(slow.id))[1]:
            break
        await asyncio.sleep(0)
    assert [d.attempt for d in (await store.deliveries(slow.id))[1]] == [1]
    assert receiver.bodies[FAST] == render(fast)  # the task's JSON as the API shows it
