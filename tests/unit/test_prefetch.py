"""The prefetch follows the worker's recent throughput: nothing before a task has finished,
about HORIZON seconds of work while tasks finish quickly, never more than its cap, and it is
topped up only once half of it is used."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from taskflow.domain.model import Task
from taskflow.entrypoints.prefetch import HORIZON, WINDOW, Prefetch

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tasks(count: int) -> list[Task]:
    return [Task.new(id=uuid.uuid4(), type="t", payload={}, now=NOW) for _ in range(count)]


def finish(prefetch: Prefetch, ticks: Ticks, count: int, seconds: float) -> None:
    for _ in range(count):
        prefetch.finished()
    ticks.now += seconds


def test_nothing_is_claimed_ahead_before_a_task_has_finished() -> None:
    ticks = Ticks()
    prefetch = Prefetch(240, clock=ticks)
    assert prefetch.room() == 0
    ticks.now += 10 * WINDOW
    assert prefetch.room() == 0


def test_room_is_the_recent_rate_times_the_horizon_within_the_cap() -> None:
    ticks = Ticks()
    prefetch = Prefetch(240, clock=ticks)
    finish(prefetch, ticks, 100, 0.1)  # 1,000 tasks/s
    assert prefetch.room() == int(1000 * HORIZON)

    fast = Prefetch(240, clock=ticks)
    finish(fast, ticks, 10_000, 0.1)  # 100,000 tasks/s
    assert fast.room() == 240


def test_it_is_topped_up_only_once_half_is_used() -> None:
    ticks = Ticks()
    prefetch = Prefetch(100, clock=ticks)
    finish(prefetch, ticks, 10_000, 0.1)
    prefetch.put(tasks(prefetch.room()))
    assert len(prefetch) == 100
    for _ in range(49):
        prefetch.take()
    assert prefetch.room() == 0  # 51 left: more than half
    prefetch.take()
    assert prefetch.room() == 50


def test_a_turn_to_slow_handlers_shrinks_it_within_a_few_windows() -> None:
    ticks = Ticks()
    prefetch = Prefetch(240, clock=ticks)
    finish(prefetch, ticks, 10_000, 0.1)
    assert prefetch.room() == 240
    finish(prefetch, ticks, 1, 1.0)  # then one task in a second
    assert prefetch.room() == 0

    busy = Prefetch(240, clock=ticks)
    finish(busy, ticks, 10_000, 0.1)
    busy.room()
    finish(busy, ticks, 1, WINDOW)  # one quiet window only weighs a quarter
    assert busy.room() == 240


def test_a_task_can_be_removed_or_all_taken_back() -> None:
    prefetch = Prefetch(10)
    first, second, third = tasks(3)
    prefetch.put([first, second, third])
    assert prefetch.remove(second.id) == second
    assert prefetch.remove(second.id) is None
    assert list(prefetch) == [first, third]
    assert prefetch.drain() == [first, third]
    assert len(prefetch) == 0
    assert prefetch.take() is None
