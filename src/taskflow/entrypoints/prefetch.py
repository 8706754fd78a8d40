"""Tasks a worker claims ahead of its free slots, as many as it will start within moments.

A claim and an outcome's write each cost one statement and one commit, whatever the number of
tasks they carry. When handlers are quick, claiming only as many tasks as there are free slots
makes both small and their fixed cost dominate; claiming ahead fills them. When handlers are
slow, a task claimed ahead would wait in this worker while another sits idle, so the prefetch
follows the rate at which this worker finishes tasks: it holds about ``horizon`` seconds of
work, never more than ``cap`` tasks, and nothing until a first task has finished.

A prefetched task is claimed like any other: its lease is held, renewed and fenced, it is
handed back (released, uncounted) at shutdown, and its cancel is acknowledged without running.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from uuid import UUID

from taskflow.domain.model import Task

#: Seconds of this worker's recent throughput that may wait in the prefetch.
HORIZON = 0.05
#: The throughput is measured over windows at least this long.
WINDOW = 0.05
#: A lower throughput replaces the former one over about this many seconds.
SETTLE = 0.2


class Prefetch:
    def __init__(
        self,
        cap: int,
        *,
        horizon: float = HORIZON,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap = cap
        self._horizon = horizon
        self._clock = clock
        self._tasks: deque[Task] = deque()
        self._rate = 0.0  # tasks finished per second, smoothed
        self._finished = 0
        self._since = clock()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def finished(self) -> None:
        """One task of this worker finished (its handler is done)."""
        self._finished += 1

    def room(self) -> int:
        """How many more tasks may be claimed ahead now."""
        now = self._clock()
        elapsed = now - self._since
        if elapsed >= WINDOW:
            measured = self._finished / elapsed
            # A burst of quick tasks lifts it at once; a lull or a turn to slow handlers
            # brings it down within about SETTLE seconds, so one slow window is not enough.
            weight = 1.0 if measured > self._rate else min(1.0, elapsed / SETTLE)
            self._rate += weight * (measured - self._rate)
            self._finished, self._since = 0, now
        wanted = min(self.cap, int(self._rate * self._horizon))
        # Topping up after every few tasks would bring back the small claims this is for:
        # claim again once half of it is used.
        if len(self._tasks) > wanted // 2:
            return 0
        return wanted - len(self._tasks)

    def put(self, tasks: Iterable[Task]) -> None:
        self._tasks.extend(tasks)

    def take(self) -> Task | None:
        return self._tasks.popleft() if self._tasks else None

    def remove(self, task_id: UUID) -> Task | None:
        for task in self._tasks:
            if task.id == task_id:
                self._tasks.remove(task)
                return task
        return None

    def drain(self) -> list[Task]:
        tasks = list(self._tasks)
        self._tasks.clear()
        return tasks
