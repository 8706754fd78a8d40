"""TaskRepository.find and .stats: every filter, the order, the limit and the keyset, on every
backend (the ``backend`` fixture of test_repository_contract: memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from taskflow.domain.errors import InvalidQuery
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.queries import MetadataEquals, Page, Position, TaskCount, TaskQuery
from tests.contracts import test_repository_contract as repository_contract
from tests.contracts.test_repository_contract import Backend, token

backend = repository_contract.backend  # the fixture: every store, fresh for each test
EVERYTHING = TaskQuery()


_ORIGINS: dict[int, datetime] = {}


@pytest.fixture(autouse=True)
def _fresh_origins() -> None:
    _ORIGINS.clear()  # each test takes its own point (an id may be reused by the next backend)


def at(backend: Backend, seconds: float) -> datetime:
    """An instant ``seconds`` after a fixed point an hour ago: creation times the test picks.

    The point is taken once per backend: read anew at each call, it moved by a second whenever
    a test crossed a second's boundary, and the test then failed.
    """
    origin = _ORIGINS.setdefault(
        id(backend), backend.now().replace(microsecond=0) - timedelta(hours=1)
    )
    return origin + timedelta(seconds=seconds)


def make(backend: Backend, seconds: float, **options: Any) -> Task:
    options.setdefault("type", "test.job")
    return Task.new(id=uuid.uuid4(), payload={}, now=at(backend, seconds), **options)


def newest_first(tasks: Sequence[Task]) -> list[uuid.UUID]:
    return [t.id for t in sorted(tasks, key=Position.of, reverse=True)]


async def ids(backend: Backend, query: TaskQuery, limit: int = 1000) -> list[uuid.UUID]:
    return [t.id for t in await backend.repo.find(query, after=None, limit=limit)]


async def test_find_lists_every_task_newest_first_ids_breaking_ties(backend: Backend) -> None:
    tasks = [make(backend, s) for s in (5, 1, 3, 3, 3, 2)]
    await backend.repo.add_many(tasks)
    found = await backend.repo.find(EVERYTHING, after=None, limit=100)
    assert [t.id for t in found] == newest_first(tasks)
    assert found[0] == max(tasks, key=Position.of)


async def test_find_returns_at_most_limit_tasks(backend: Backend) -> None:
    tasks = [make(backend, s) for s in range(7)]
    await backend.repo.add_many(tasks)
    assert await ids(backend, EVERYTHING, limit=3) == newest_first(tasks)[:3]


async def test_find_by_status_takes_any_of_those_given(backend: Backend) -> None:
    pending = make(backend, 1)
    running = make(backend, 2)
    cancelled = make(backend, 3)
    done = make(backend, 4)
    await backend.repo.add_many([pending, running, cancelled, done])
    for task in (running, done):
        await backend.repo.claim([task.id], worker_id="w", lease_seconds=60)
    await backend.repo.save(cancelled.cancel(now=at(backend, 5)))
    claimed = await backend.repo.get(done.id)
    await backend.repo.save(claimed.succeed(token(claimed), None, now=at(backend, 6)))

    def having(*statuses: TaskStatus) -> TaskQuery:
        return TaskQuery(statuses=frozenset(statuses))

    assert await ids(backend, having(TaskStatus.PENDING)) == [pending.id]
    assert await ids(backend, having(TaskStatus.PROCESSING)) == [running.id]
    assert await ids(backend, having(TaskStatus.SUCCESS, TaskStatus.CANCELLED)) == [
        done.id,
        cancelled.id,
    ]
    assert await ids(backend, having(TaskStatus.FAILED)) == []


async def test_find_by_type_and_queue(backend: Backend) -> None:
    a = make(backend, 1, type="billing.invoice", queue="billing")
    b = make(backend, 2, type="billing.invoice", queue="default")
    c = make(backend, 3, type="mail.send", queue="billing")
    await backend.repo.add_many([a, b, c])
    assert await ids(backend, TaskQuery(type="billing.invoice")) == [b.id, a.id]
    assert await ids(backend, TaskQuery(queue="billing")) == [c.id, a.id]
    assert await ids(backend, TaskQuery(type="billing.invoice", queue="billing")) == [a.id]
    assert await ids(backend, TaskQuery(type="unknown.kind")) == []


async def test_find_by_creation_time_excludes_both_bounds(backend: Backend) -> None:
    tasks = [make(backend, s) for s in (1, 2, 3, 4)]
    await backend.repo.add_many(tasks)
    after_1 = TaskQuery(created_after=at(backend, 1))
    assert await ids(backend, after_1) == newest_first(tasks[1:])
    before_4 = TaskQuery(created_before=at(backend, 4))
    assert await ids(backend, before_4) == newest_first(tasks[:3])
    between = TaskQuery(created_after=at(backend, 1), created_before=at(backend, 4))
    assert await ids(backend, between) == newest_first(tasks[1:3])
    microsecond = TaskQuery(created_after=at(backend, 4) - timedelta(microseconds=1))
    assert await ids(backend, microsecond) == [tasks[3].id]


METADATA = {
    "text": {"customer": "42"},
    "integer": {"customer": 42},
    "real": {"customer": 42.0},
    "other": {"customer": 7},
    "true": {"customer": True},
    "text true": {"customer": "true"},
    "null": {"customer": None},
    "nested": {"customer": {"id": 42}},
    "list": {"customer": [42]},
    "none": {},
    "other key": {"client": "42"},
    "odd key": {'a."b".c': "x y"},
}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("customer", "42", {"text", "integer", "real"}),
        ("customer", "42.0", {"integer", "real"}),
        ("customer", "true", {"true", "text true"}),
        ("customer", "null", {"null"}),
        ("customer", "abc", set()),
        ('a."b".c', "x y", {"odd key"}),
        ("client", "42", {"other key"}),
    ],
)
async def test_find_by_metadata_compares_as_documented(
    backend: Backend, key: str, value: str, expected: set[str]
) -> None:
    named = {name: make(backend, i, metadata=m) for i, (name, m) in enumerate(METADATA.items())}
    await backend.repo.add_many(list(named.values()))
    found = set(await ids(backend, TaskQuery(metadata=(MetadataEquals(key, value),))))
    assert {name for name, task in named.items() if task.id in found} == expected


async def test_find_with_every_filter_at_once_takes_what_meets_them_all(backend: Backend) -> None:
    hit = make(backend, 2, type="a.b", queue="q", metadata={"k": "v", "n": 1})
    misses = [
        make(backend, 3, type="a.c", queue="q", metadata={"k": "v", "n": 1}),
        make(backend, 3, type="a.b", queue="r", metadata={"k": "v", "n": 1}),
        make(backend, 3, type="a.b", queue="q", metadata={"k": "v", "n": 2}),
        make(backend, 9, type="a.b", queue="q", metadata={"k": "v", "n": 1}),
    ]
    await backend.repo.add_many([hit, *misses])
    query = TaskQuery(
        statuses=frozenset({TaskStatus.PENDING}),
        type="a.b",
        queue="q",
        created_after=at(backend, 1),
        created_before=at(backend, 5),
        metadata=(MetadataEquals("k", "v"), MetadataEquals("n", "1")),
    )
    assert await ids(backend, query) == [hit.id]


async def test_keyset_pages_neither_repeat_nor_skip_while_tasks_arrive(backend: Backend) -> None:
    # Many tasks share a creation time, so pages end inside a tie that ids must break.
    first = [make(backend, s // 3) for s in range(20)]
    await backend.repo.add_many(first)
    seen: list[uuid.UUID] = []
    after: Position | None = None
    arrivals = 0
    while True:
        page = Page.of(await backend.repo.find(EVERYTHING, after=after, limit=4), 3)
        seen.extend(t.id for t in page.items)
        if page.next is None:
            break
        after = page.next
        # Newer tasks, including one created at the very instant of the page's last task.
        arrivals += 1
        tie = Task.new(id=uuid.uuid4(), type="test.job", payload={}, now=after.created_at)
        await backend.repo.add_many([make(backend, 100 + arrivals), tie])
    assert arrivals >= 6
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in {t.id for t in first}] == newest_first(first)


async def test_find_after_the_last_task_is_empty(backend: Backend) -> None:
    tasks = [make(backend, s) for s in (1, 2)]
    await backend.repo.add_many(tasks)
    oldest = min(tasks, key=Position.of)
    assert await backend.repo.find(EVERYTHING, after=Position.of(oldest), limit=10) == []


async def test_stats_counts_tasks_per_queue_type_and_status(backend: Backend) -> None:
    tasks = [
        make(backend, 1, type="a.x", queue="q1"),
        make(backend, 2, type="a.x", queue="q1"),
        make(backend, 3, type="a.y", queue="q1"),
        make(backend, 4, type="a.x", queue="q2"),
    ]
    await backend.repo.add_many(tasks)
    await backend.repo.save(tasks[1].cancel(now=at(backend, 5)))
    assert await backend.repo.stats(tenant=None) == [
        TaskCount("q1", "a.x", TaskStatus.CANCELLED, 1),
        TaskCount("q1", "a.x", TaskStatus.PENDING, 1),
        TaskCount("q1", "a.y", TaskStatus.PENDING, 1),
        TaskCount("q2", "a.x", TaskStatus.PENDING, 1),
    ]


async def test_stats_of_an_empty_store_is_empty(backend: Backend) -> None:
    assert await backend.repo.stats(tenant=None) == []


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TaskQuery(type="Not A Type"), "type"),
        (lambda: TaskQuery(queue="-bad"), "queue"),
        (lambda: TaskQuery(created_after=datetime(2030, 1, 1)), "created_after"),
        (lambda: TaskQuery(metadata=(MetadataEquals("", "x"),)), "metadata"),
        (lambda: TaskQuery(metadata=(MetadataEquals("k", "a\x00"),)), "metadata.k"),
    ],
)
def test_a_query_refuses_what_no_task_could_match_naming_the_parameter(
    build: Any, field: str
) -> None:
    with pytest.raises(InvalidQuery) as refused:
        build()
    assert refused.value.field == field
