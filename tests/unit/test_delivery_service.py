"""DeliveryService on the in-memory store: tries, retries with backoff, giving up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.domain.deliveries import DeliveryPolicy, Sent
from taskflow.domain.model import Lease, Task
from taskflow.domain.services.delivery import DeliveryService
from tests.clocks import FakeClock

URL = "https://hooks.example.com/done"


class ScriptedReceiver:
    """A WebhookSender whose receiver answers as scripted (the last answer over and over)."""

    def __init__(self, *answers: Sent) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, str]] = []

    async def send(self, url: str, body: bytes, *, message_id: str) -> Sent:
        self.sent.append((url, body, message_id))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def _setup(
    receiver: ScriptedReceiver, *, window: float = 3600.0
) -> tuple[DeliveryService, InMemoryTaskRepository, FakeClock, Task]:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    repo = InMemoryTaskRepository(clock)
    task = Task.new(id=uuid.uuid4(), type="t.x", payload={"n": 1}, now=clock.now())
    await repo.callback_store().add([task], {task.id: URL})
    running = task.claim(Lease(uuid.uuid4(), "w", clock.now()), now=clock.now())
    assert running.lease is not None
    await repo.save(running)
    done = running.succeed(running.lease.token, {"ok": True}, now=clock.now())
    await repo.save(done)
    service = DeliveryService(
        store=repo.callback_store(),
        sender=receiver,
        render=lambda t: f"{t.id}:{t.status.value}".encode(),
        clock=clock,
        policy=DeliveryPolicy(window=window, base=1.0, max=8.0),
        rand=lambda: 1.0,  # the longest wait: d
        lease_seconds=60.0,
    )
    return service, repo, clock, done


async def test_a_receiver_failing_twice_gets_three_tries_of_one_message() -> None:
    receiver = ScriptedReceiver(Sent(500), Sent(None, "ConnectError: refused"), Sent(204))
    service, repo, clock, task = await _setup(receiver)

    assert len(await service.deliver_due()) == 1
    assert await service.deliver_due() == []  # not before its backoff
    clock.advance(1.0)
    assert len(await service.deliver_due()) == 1
    clock.advance(1.9)
    assert await service.deliver_due() == []
    clock.advance(0.1)
    [(task_id, last)] = await service.deliver_due()
    clock.advance(3600)
    assert await service.deliver_due() == []

    assert task_id == task.id
    assert (last.attempt, last.status_code, last.error) == (3, 204, None)
    assert {message_id for _, _, message_id in receiver.sent} == {receiver.sent[0][2]}
    assert {body for _, body, _ in receiver.sent} == {f"{task.id}:SUCCESS".encode()}
    url, deliveries = await repo.callback_store().deliveries(task.id)
    assert url == URL
    assert [(d.attempt, d.status_code, d.error) for d in deliveries] == [
        (1, 500, "the receiver answered 500"),
        (2, None, "ConnectError: refused"),
        (3, 204, None),
    ]


async def test_a_message_is_given_up_once_the_next_try_would_start_past_the_window() -> None:
    service, repo, clock, task = await _setup(ScriptedReceiver(Sent(503)), window=10.0)
    for _ in range(20):
        await service.deliver_due()
        clock.advance(1.0)
    _, deliveries = await repo.callback_store().deliveries(task.id)
    # Tries at 0, 1, 3, 7 s; the next would wait 8 s more, past 10 s: given up at the fourth.
    assert [d.attempt for d in deliveries] == [1, 2, 3, 4]
    assert deliveries[-1].error == "the receiver answered 503; given up after 4 tries"
