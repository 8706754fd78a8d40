"""TaskRepository.finished_per_minute: the dashboard's charts, on every backend (memory, SQLite,
PostgreSQL: the ``backend`` fixture of test_repository_contract)."""

from __future__ import annotations

from datetime import datetime, timedelta

from taskflow.domain.model import Task, TaskError, TaskStatus
from taskflow.domain.throughput import MINUTE, MinuteCount, per_minute, window_start
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import HOUR, Backend, lease, new_task, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test


def ended(status: TaskStatus, at: datetime) -> Task:
    """A task that reached ``status`` at ``at``."""
    task = new_task(at - HOUR)
    if status is TaskStatus.CANCELLED:
        return task.cancel(now=at)
    claimed = task.claim(lease(at - HOUR), now=at - HOUR)
    if status is TaskStatus.SUCCESS:
        return claimed.succeed(token(claimed), {"ok": True}, now=at)
    return claimed.fail(token(claimed), TaskError("E", "m"), now=at, rand=0.5, final=True)


async def test_final_tasks_are_counted_in_the_minute_they_finished(backend: Backend) -> None:
    since = window_start(backend.now())
    last_microsecond = MINUTE - timedelta(microseconds=1)
    await backend.repo.add_many(
        [
            ended(TaskStatus.SUCCESS, since),
            ended(TaskStatus.SUCCESS, since + 5 * MINUTE),
            ended(TaskStatus.SUCCESS, since + 5 * MINUTE + last_microsecond),
            ended(TaskStatus.FAILED, since + 5 * MINUTE + timedelta(seconds=30)),
            ended(TaskStatus.CANCELLED, since + 59 * MINUTE + timedelta(seconds=1)),
            # Before the window: left out.
            ended(TaskStatus.SUCCESS, since - timedelta(microseconds=1)),
            ended(TaskStatus.FAILED, since - 2 * MINUTE),
            # Not final: left out.
            new_task(since),
            new_task(since).claim(lease(since), now=since),
        ]
    )
    assert await backend.repo.finished_per_minute(since, tenant=None) == [
        MinuteCount(since, TaskStatus.SUCCESS, 1),
        MinuteCount(since + 5 * MINUTE, TaskStatus.FAILED, 1),
        MinuteCount(since + 5 * MINUTE, TaskStatus.SUCCESS, 2),
        MinuteCount(since + 59 * MINUTE, TaskStatus.CANCELLED, 1),
    ]


async def test_an_empty_store_counts_nothing(backend: Backend) -> None:
    assert await backend.repo.finished_per_minute(window_start(backend.now()), tenant=None) == []


async def test_a_retried_task_leaves_the_minute_it_had_failed_in(backend: Backend) -> None:
    since = window_start(backend.now())
    failed = ended(TaskStatus.FAILED, since + MINUTE)
    await backend.repo.add(failed)
    assert await backend.repo.finished_per_minute(since, tenant=None) == [
        MinuteCount(since + MINUTE, TaskStatus.FAILED, 1)
    ]
    await backend.repo.save(failed.retry(now=since + 2 * MINUTE))
    assert await backend.repo.finished_per_minute(since, tenant=None) == []


def test_per_minute_fills_every_minute_of_the_window_oldest_first() -> None:
    now = datetime.fromisoformat("2030-01-01T12:34:56.789+00:00")
    since = window_start(now)
    assert since == datetime.fromisoformat("2030-01-01T11:35:00+00:00")
    minutes = per_minute(
        [
            MinuteCount(since, TaskStatus.SUCCESS, 3),
            MinuteCount(since, TaskStatus.FAILED, 1),
            MinuteCount(since + 59 * MINUTE, TaskStatus.CANCELLED, 2),
        ],
        since,
        60,
    )
    assert len(minutes) == 60
    assert [m.start for m in minutes] == [since + i * MINUTE for i in range(60)]
    assert minutes[-1].start == now.replace(second=0, microsecond=0)
    assert (minutes[0].succeeded, minutes[0].failed, minutes[0].failure_rate) == (3, 1, 0.25)
    assert minutes[1].finished == 0
    assert minutes[1].failure_rate is None
    assert minutes[-1].cancelled == 2
    assert minutes[-1].failure_rate is None
