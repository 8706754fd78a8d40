"""TaskService.retry with a new payload, and retry_many, on the in-memory store."""

from __future__ import annotations

import asyncio

import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.changes import ChangeAction
from taskflow.domain.errors import (
    InvalidPayload,
    InvalidQuery,
    InvalidSubmission,
    InvalidTransition,
    UnknownTaskType,
)
from taskflow.domain.limits import RETRY_MANY_LIMIT_DEFAULT, RETRY_MANY_LIMIT_MAX
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.queries import TaskQuery
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from tests.clocks import FakeClock
from tests.unit import test_services
from tests.unit.test_services import (
    BOOM,
    MAIL,
    FakeTypes,
    claim_one,
    execution_service,
    submission,
    task_service,
)

ALL = TaskQuery()


async def failed(service: TaskService, worker: ExecutionService, command: SubmitTask) -> Task:
    await service.submit(command)
    return await worker.fail(await claim_one(worker), BOOM, final=True)


# The fixtures of test_services: a clock the test moves, the in-memory store and queue, and
# services on them.
clock, repo, queue, service, worker = (
    test_services.clock,
    test_services.repo,
    test_services.queue,
    test_services.service,
    test_services.worker,
)


async def test_a_retry_with_a_payload_runs_with_it_and_the_history_says_who_changed_what(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await failed(service, worker, MAIL)

    again = await service.retry(task.id, payload={"to": "fixed@b.c"}, by="ana")

    assert (again.status, again.payload) == (TaskStatus.PENDING, {"to": "fixed@b.c"})
    assert (await claim_one(worker)).payload == {"to": "fixed@b.c"}
    attempts, [change] = await service.history(task.id)
    assert len(attempts) == 2
    assert (change.action, change.by, change.after_attempt) == (ChangeAction.RETRY, "ana", 1)
    assert (change.payload_before, change.payload_after) == ({"to": "a@b.c"}, {"to": "fixed@b.c"})


async def test_a_retry_without_a_payload_keeps_it_and_records_no_payload(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await failed(service, worker, MAIL)
    again = await service.retry(task.id)
    assert again.payload == {"to": "a@b.c"}
    _, [change] = await service.history(task.id)
    assert (change.by, change.payload_before, change.payload_after) == ("unknown", None, None)


async def test_a_new_payload_is_checked_like_a_submission(
    service: TaskService, worker: ExecutionService
) -> None:
    task = await failed(service, worker, MAIL)
    with pytest.raises(InvalidPayload) as refused:
        await service.retry(task.id, payload={"subject": "no recipient"})
    assert refused.value.field == "payload.to"
    assert (await service.get(task.id)).status is TaskStatus.FAILED
    assert (await service.history(task.id))[1] == []


async def test_a_new_payload_for_a_type_no_longer_registered_is_refused(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    service, worker = task_service(repo, queue, clock), execution_service(repo, queue, clock, "w")
    task = await failed(service, worker, MAIL)
    without_mail = task_service(repo, queue, clock, FakeTypes())
    with pytest.raises(UnknownTaskType, match="not registered"):
        await without_mail.retry(task.id, payload={"to": "x@y.z"})
    assert (await without_mail.retry(task.id)).status is TaskStatus.PENDING


async def test_a_retry_names_a_bad_actor(service: TaskService, worker: ExecutionService) -> None:
    task = await failed(service, worker, MAIL)
    with pytest.raises(InvalidSubmission, match="actor"):
        await service.retry(task.id, by="")


async def test_retry_many_revives_failed_and_cancelled_newest_first_up_to_the_limit(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    dead = []
    for _ in range(3):
        dead.append(await failed(service, worker, submission()))
        clock.advance(1)
    cancelled = await service.cancel((await service.submit(submission())).id)
    clock.advance(1)
    await service.submit(submission(delay_seconds=600))  # PENDING: never touched

    first = await service.retry_many(ALL, limit=2, by="ops")

    assert [t.id for t in first] == [cancelled.id, dead[2].id]
    assert all(t.status is TaskStatus.PENDING for t in first)
    rest = await service.retry_many(ALL, by="ops")
    assert [t.id for t in rest] == [dead[1].id, dead[0].id]
    assert await service.retry_many(ALL) == []
    _, [change] = await service.history(dead[0].id)
    assert change.by == "ops"


async def test_retry_many_applies_the_filters(
    service: TaskService, worker: ExecutionService, clock: FakeClock
) -> None:
    mail = await failed(service, worker, MAIL)
    clock.advance(1)
    plain = await failed(service, worker, submission())

    assert [t.id for t in await service.retry_many(TaskQuery(type="mail.send"))] == [mail.id]
    assert await service.retry_many(TaskQuery(created_after=plain.created_at)) == []
    only = TaskQuery(statuses=frozenset({TaskStatus.CANCELLED}))
    assert await service.retry_many(only) == []
    assert [t.id for t in await service.retry_many(TaskQuery(queue="default"))] == [plain.id]


async def test_retry_many_refuses_a_status_that_cannot_be_retried(service: TaskService) -> None:
    query = TaskQuery(statuses=frozenset({TaskStatus.FAILED, TaskStatus.SUCCESS}))
    with pytest.raises(InvalidQuery, match="not SUCCESS") as refused:
        await service.retry_many(query)
    assert refused.value.field == "status"


@pytest.mark.parametrize("limit", [0, RETRY_MANY_LIMIT_MAX + 1])
async def test_retry_many_refuses_a_limit_out_of_range(service: TaskService, limit: int) -> None:
    with pytest.raises(InvalidQuery) as refused:
        await service.retry_many(ALL, limit=limit)
    assert refused.value.field == "limit"


async def test_retry_many_takes_the_default_limit(
    service: TaskService, repo: InMemoryTaskRepository, clock: FakeClock
) -> None:
    for _ in range(RETRY_MANY_LIMIT_DEFAULT + 1):
        await service.cancel((await service.submit(submission())).id)
    assert len(await service.retry_many(ALL)) == RETRY_MANY_LIMIT_DEFAULT
    assert len(await service.retry_many(ALL)) == 1


async def test_bulk_retries_at_once_revive_each_task_once(
    repo: InMemoryTaskRepository, queue: InMemoryTaskQueue, clock: FakeClock
) -> None:
    service = task_service(repo, queue, clock)
    ids = [(await service.cancel((await service.submit(submission())).id)).id for _ in range(5)]
    others = [task_service(repo, queue, clock) for _ in range(3)]

    revived = await asyncio.gather(*(s.retry_many(ALL) for s in [service, *others]))

    assert sorted(t.id for batch in revived for t in batch) == sorted(ids)
    for task_id in ids:
        assert len((await service.history(task_id))[1]) == 1


async def test_a_task_that_is_not_final_cannot_be_retried_with_a_payload(
    service: TaskService,
) -> None:
    task = await service.submit(submission(delay_seconds=60))
    with pytest.raises(InvalidTransition):
        await service.retry(task.id, payload={"n": 2})
    assert (await service.get(task.id)).payload == task.payload
