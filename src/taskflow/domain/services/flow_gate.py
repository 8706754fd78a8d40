"""The worker's side of flow control: ask the limiter before a claim, give slots back after.

Only built when a limit is configured: without one, the claim and the outcomes never reach it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from uuid import UUID

from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.flow import Admission, FlowPolicy, Limit, Popped, throttle_wait
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.ports import Clock, Dispatch, FlowLimiter, TaskQueue

#: Seconds a task waiting for a concurrency slot waits before it is looked at again (plus up to
#: as much again, at random, so that waiting tasks come back spread out).
SLOT_RECHECK = 0.1


class FlowGate:
    def __init__(
        self,
        policy: FlowPolicy,
        limiter: FlowLimiter,
        *,
        queue: TaskQueue,
        clock: Clock,
        rand: Callable[[], float],
        lease_seconds: float,
    ) -> None:
        self._policy = policy
        self._limiter = limiter
        self._queue = queue
        self._clock = clock
        self._rand = rand
        self._lease_seconds = lease_seconds
        self._slots = policy.has_slots

    def applies_to(self, queues: Sequence[str]) -> bool:
        return self._policy.applies_to(queues)

    @property
    def payload_keys(self) -> frozenset[str]:
        return self._policy.payload_keys

    def known_limits(
        self,
        ids: Sequence[UUID],
        queues: Sequence[str],
        kinds: Mapping[UUID, tuple[str, str]],
    ) -> tuple[list[tuple[UUID, tuple[Limit, ...]]], list[UUID]]:
        """The limits of those popped ``ids`` known unread, and the ids to read for theirs.

        Known from the queue alone (one queue, no type limit), or from the queue and type the
        queue handed back with the id (``kinds``), unless a concurrency key needs the payload.
        """
        by_queue = self._policy.known_without_reading(queues)
        if by_queue is not None:
            return [(i, by_queue) for i in ids], []
        known: list[tuple[UUID, tuple[Limit, ...]]] = []
        unknown: list[UUID] = []
        for task_id in ids:
            kind = kinds.get(task_id)
            limits = None if kind is None else self._policy.limits_of(*kind)
            if limits is None:
                unknown.append(task_id)
            else:
                known.append((task_id, limits))
        return known, unknown

    async def hold_back(
        self,
        known: Sequence[tuple[UUID, Sequence[Limit]]],
        found: Sequence[Popped],
        read: Callable[[list[UUID]], Awaitable[list[Popped]]],
    ) -> tuple[set[UUID], list[tuple[Popped, float]]]:
        """Admit the tasks whose limits are ``known`` unread and the PENDING ones of those
        ``found`` by a read, taking their starts and slots; put the others back in the queue,
        delayed by their wait. Returns the ids admitted and the tasks held back with their wait.

        A refused task goes back with its priority, so those refused among ``known`` are
        ``read`` (those no longer PENDING are someone else's).
        """
        requests = [(task_id, limits) for task_id, limits in known if limits]
        requests += [
            (task.id, limits)
            for task in found
            if task.status is TaskStatus.PENDING and (limits := self._policy.limits_for(task))
        ]
        if not requests:
            return set(), []
        admission = await self._limiter.admit(requests, lease_seconds=self._lease_seconds)
        admitted = admission.admitted
        asked = {task_id for task_id, _ in requests}
        refused = [t for t in found if t.id in asked and t.id not in admitted]
        unread = [i for i, limits in known if limits and i not in admitted]
        if unread:
            refused += [t for t in await read(unread) if t.status is TaskStatus.PENDING]
        return set(admitted), await self._put_back(refused, admission)

    async def _put_back(
        self, refused: Sequence[Popped], admission: Admission
    ) -> list[tuple[Popped, float]]:
        now = self._clock.now()
        held_back = [
            (task, throttle_wait(admission, task.id, recheck=SLOT_RECHECK, rand=self._rand()))
            for task in refused
        ]
        if held_back:
            await self._queue.push(
                [
                    Dispatch(
                        task.id, task.queue, task.priority, now + timedelta(seconds=wait), task.type
                    )
                    for task, wait in held_back
                ]
            )
        return held_back

    async def give_back(self, task_ids: Sequence[UUID]) -> None:
        """Admitted, then not claimed: their slots are free again."""
        if task_ids and self._slots:
            await self._limiter.release(task_ids)

    async def ended(self, task: Task) -> None:
        """``task``'s attempt ended: its slots are free (with Redis unreachable, they lapse with
        the lease, which nobody renews any more)."""
        if self._slots and self._policy.holds_slots(task):
            with contextlib.suppress(QueueUnavailable):
                await self._limiter.release([task.id])

    async def restore(self, running: Sequence[Task]) -> int:
        """The limiter lost its slots (a Redis restart): hold those of the ``running`` tasks
        again until their lease ends. Returns how many tasks hold slots again."""
        if not self._slots:
            return 0
        now = self._clock.now()
        holders = [
            (task.id, limits, (task.lease.expires_at - now).total_seconds())
            for task in running
            if task.lease is not None
            and task.lease.expires_at > now
            and (limits := [x for x in self._policy.limits_for(task) if x.concurrency is not None])
        ]
        await self._limiter.restore(holders)
        return len(holders)

    async def renew(self, task_ids: Sequence[UUID], *, lease_seconds: float) -> None:
        """The leases of ``task_ids`` were renewed; ``lease_seconds``: what remains of them."""
        if task_ids and self._slots:
            # Unreachable: they lapse with the previous lease, and the limit may be exceeded
            # by as many once it is back (decision 21).
            with contextlib.suppress(QueueUnavailable):
                await self._limiter.renew(task_ids, lease_seconds=lease_seconds)
