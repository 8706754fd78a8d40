"""The in-memory ``CallbackStore``, kept beside an in-memory task store: the unit-test fake.

It passes the same contract suite (tests/contracts/test_callbacks_contract.py) as the SQL one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from taskflow.domain.deliveries import Delivery, DueCallback
from taskflow.domain.model import FINAL, Task
from taskflow.domain.ports import TaskRepository


@dataclass(frozen=True, slots=True)
class _Callback:
    url: str
    next_attempt_at: datetime | None = None  # of the current message's next try
    delivered_version: int | None = None
    lock: tuple[UUID, datetime] | None = None
    message: tuple[str, int, datetime] | None = None  # id, version, first try
    tries: int = 0
    attempts: int = 0


class InMemoryCallbackStore:
    def __init__(self, repository: TaskRepository) -> None:
        self._repo = repository
        self._callbacks: dict[UUID, _Callback] = {}
        self._deliveries: dict[UUID, list[Delivery]] = {}

    async def add(
        self,
        tasks: Sequence[Task],
        urls: Mapping[UUID, str],
        *,
        key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[list[Task], bool]:
        if key is None:
            await self._repo.add_many(tasks)
            stored, replayed = list(tasks), False
        else:
            stored, replayed = await self._repo.add_idempotent(
                tasks, key=key, request_hash=request_hash or ""
            )
        if not replayed:  # no await since the tasks were added: both are there, or neither
            self._callbacks.update((task_id, _Callback(url)) for task_id, url in urls.items())
        return stored, replayed

    async def claim_due(
        self, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[DueCallback]:
        tasks = {t.id: t for t in await self._repo.get_many(list(self._callbacks))}
        due = sorted(
            (
                (callback.next_attempt_at or tasks[task_id].updated_at, task_id)
                for task_id, callback in self._callbacks.items()
                if task_id in tasks and _is_due(callback, tasks[task_id], now)
            ),
        )
        claimed = []
        for _, task_id in due[:limit]:
            task, callback = tasks[task_id], self._callbacks[task_id]
            if callback.message is None or callback.message[1] != task.version:
                message = (f"msg_{uuid.uuid4().hex}", task.version, now)
                callback = replace(callback, message=message, tries=0, next_attempt_at=None)
            token = uuid.uuid4()
            lock = (token, now + timedelta(seconds=lease_seconds))
            self._callbacks[task_id] = callback = replace(callback, lock=lock)
            assert callback.message is not None
            claimed.append(
                DueCallback(
                    task=task,
                    url=callback.url,
                    message_id=callback.message[0],
                    started_at=callback.message[2],
                    tries=callback.tries,
                    attempt=callback.attempts + 1,
                    token=token,
                )
            )
        return claimed

    async def record(
        self, due: DueCallback, delivery: Delivery, *, retry_at: datetime | None
    ) -> bool:
        callback = self._callbacks.get(due.task.id)
        if callback is None or callback.lock is None or callback.lock[0] != due.token:
            return False
        settled = callback.delivered_version if retry_at is not None else due.task.version
        self._callbacks[due.task.id] = replace(
            callback,
            lock=None,
            next_attempt_at=retry_at,
            delivered_version=settled,
            tries=due.tries + 1,
            attempts=due.attempt,
        )
        self._deliveries.setdefault(due.task.id, []).append(delivery)
        return True

    async def deliveries(self, task_id: UUID) -> tuple[str | None, list[Delivery]]:
        await self._repo.get(task_id)  # TaskNotFound
        callback = self._callbacks.get(task_id)
        return (
            None if callback is None else callback.url,
            list(self._deliveries.get(task_id, [])),
        )


def _is_due(callback: _Callback, task: Task, now: datetime) -> bool:
    if task.status not in FINAL or callback.delivered_version == task.version:
        return False
    if callback.lock is not None and callback.lock[1] > now:
        return False
    new_message = callback.message is None or callback.message[1] != task.version
    return new_message or callback.next_attempt_at is None or callback.next_attempt_at <= now
