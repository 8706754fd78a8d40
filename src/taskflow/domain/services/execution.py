"""What workers do: claim, report the outcome, renew leases, recover lost work."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from taskflow.domain.attempts import AttemptEnd, AttemptOutcome, bounded_traceback
from taskflow.domain.errors import InvalidTransition, LeaseLost, StaleTask
from taskflow.domain.flow import FlowPolicy, Limit, Popped
from taskflow.domain.limits import IDEMPOTENCY_KEY_TTL
from taskflow.domain.model import Progress, Task, TaskError, TaskStatus
from taskflow.domain.ports import (
    Clock,
    FlowLimiter,
    PoppedIds,
    Renewal,
    TaskQueue,
    TaskRepository,
)
from taskflow.domain.services.dispatching import CAS_ATTEMPTS, Paused, dispatch, put_back_paused
from taskflow.domain.services.flow_gate import FlowGate

# How an attempt ended, by the status its ending transition left the task in.
_SUCCEEDED = {TaskStatus.SUCCESS: AttemptOutcome.SUCCESS}
_FAILED = {
    TaskStatus.PENDING: AttemptOutcome.RETRY,
    TaskStatus.FAILED: AttemptOutcome.FAILED,
    TaskStatus.CANCELLED: AttemptOutcome.CANCELLED,  # a cancel was requested meanwhile
}
_RELEASED = {
    TaskStatus.PENDING: AttemptOutcome.RELEASED,
    TaskStatus.CANCELLED: AttemptOutcome.CANCELLED,
}
_ACKNOWLEDGED = {TaskStatus.CANCELLED: AttemptOutcome.CANCELLED}
_LOST = dict.fromkeys(
    (TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.CANCELLED), AttemptOutcome.WORKER_LOST
)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one reconciliation step did; ``cursor`` is where the next one should start."""

    pushed: int
    resync: bool
    cursor: UUID | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The tasks a worker claimed, popped ids that no task in the store has, and the tasks a
    limit held back (each with the seconds it was put back in the queue for)."""

    tasks: list[Task]
    unknown: list[UUID]
    throttled: list[tuple[Popped, float]] = field(default_factory=list)


#: Running tasks whose slots a reconciliation restores after Redis lost them (decision 21).
RESTORED_SLOTS = 10_000


class ExecutionService:
    """What workers do: claim, report the outcome, renew leases, recover lost work."""

    def __init__(
        self,
        *,
        repository: TaskRepository,
        queue: TaskQueue,
        clock: Clock,
        rand: Callable[[], float],
        worker_id: str,
        lease_seconds: float,
        flow: FlowPolicy | None = None,
        limiter: FlowLimiter | None = None,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._clock = clock
        self._rand = rand
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        # Without a limit there is no gate: claims and outcomes cost what they did before.
        self._gate = None
        if flow and limiter is not None:
            self._gate = FlowGate(
                flow, limiter, queue=queue, clock=clock, rand=rand, lease_seconds=lease_seconds
            )

    async def claim(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[Task]:
        return (await self.claim_batch(queues, limit=limit, timeout=timeout)).tasks

    async def claim_batch(
        self, queues: Sequence[str], *, limit: int, timeout: float, paused: Paused = None
    ) -> Claim:
        """Pop up to ``limit`` ids and claim them; ids the store does not know are reported,
        ids of a queue ``paused()`` names once the pop returns go back unclaimed."""
        popped = await self._queue.pop(queues, limit=limit, timeout=timeout)
        ids = list(dict.fromkeys(popped))
        if ids and paused is not None and (held := paused()):
            ids = await put_back_paused(self._repo, self._queue, ids, held)
        if not ids:
            return Claim([], [])
        if self._gate is not None and self._gate.applies_to(queues):
            kinds = popped.kinds if isinstance(popped, PoppedIds) else {}
            return await self._claim_admitted(ids, self._gate, queues, kinds)
        return await self._claim(ids)

    async def _claim_admitted(
        self,
        ids: list[UUID],
        gate: FlowGate,
        queues: Sequence[str],
        kinds: Mapping[UUID, tuple[str, str]],
    ) -> Claim:
        """Claim those of ``ids`` every limit admits; the others go back to the queue, delayed.

        The limiter is asked before the claim, so a throttled task is no attempt: its status,
        attempts and lease stay as they were. A task's limits are known unread from its queue
        alone (one queue, no type limit) or from the type the queue handed back with its id
        (``kinds``); the others are read first. Slots taken for a task the claim then did not
        get (taken meanwhile, not yet due) are given back.
        """
        keys = gate.payload_keys

        async def read(task_ids: list[UUID]) -> list[Popped]:
            return await self._repo.popped(task_ids, keys=keys)

        known: list[tuple[UUID, tuple[Limit, ...]]] = []
        unknown = ids
        by_queue = gate.known_without_reading(queues)
        if by_queue is not None:
            known, unknown = [(i, by_queue) for i in ids], []
        elif kinds:
            unknown = []
            for task_id in ids:
                kind = kinds.get(task_id)
                limits = None if kind is None else gate.limits_of(*kind)
                if limits is None:
                    unknown.append(task_id)
                else:
                    known.append((task_id, limits))
        found = await read(unknown) if unknown else []
        admitted, throttled = await gate.hold_back(known, found, read)
        kept = {task.id for task, _ in throttled}
        claim = Claim([], [])
        if len(kept) < len(ids):
            claim = await self._claim([i for i in ids if i not in kept])
        await gate.give_back(list(admitted - {task.id for task in claim.tasks}))
        return Claim(claim.tasks, claim.unknown, throttled)

    async def _claim(self, ids: Sequence[UUID]) -> Claim:
        claimed = await self._repo.claim(
            ids, worker_id=self.worker_id, lease_seconds=self.lease_seconds
        )
        unknown: list[UUID] = []
        if len(claimed) < len(ids):
            unknown = await self._requeue_unclaimed(set(ids) - {t.id for t in claimed})
        return Claim(claimed, unknown)

    async def succeed(self, task: Task, result: Any) -> Task:
        token = _token(task)
        succeeded = await self._fenced(
            task, lambda t: t.succeed(token, result, now=self._clock.now()), _ending(_SUCCEEDED)
        )
        if self._gate is not None:
            await self._gate.ended(task)
        return succeeded

    async def fail(
        self,
        task: Task,
        error: TaskError,
        *,
        retry_after: float | None = None,
        final: bool = False,
        traceback: str | None = None,
    ) -> Task:
        """Record a failed attempt; ``traceback`` (bounded) goes to the attempt history only."""
        token = _token(task)
        rand = self._rand()
        detailed = error
        if traceback is not None:
            detailed = TaskError(error.type, error.message, bounded_traceback(traceback))
        failed = await self._fenced(
            task,
            lambda t: t.fail(
                token,
                error,
                now=self._clock.now(),
                rand=rand,
                retry_after=retry_after,
                final=final,
            ),
            _ending(_FAILED, detailed),
        )
        if self._gate is not None:
            await self._gate.ended(task)
        await dispatch(self._queue, [failed])
        return failed

    async def release(self, task: Task) -> Task:
        token = _token(task)
        released = await self._fenced(
            task, lambda t: t.release(token, now=self._clock.now()), _ending(_RELEASED)
        )
        if self._gate is not None:
            await self._gate.ended(task)
        await dispatch(self._queue, [released])
        return released

    async def acknowledge_cancel(self, task: Task) -> Task:
        token = _token(task)
        cancelled = await self._fenced(
            task,
            lambda t: t.acknowledge_cancel(token, now=self._clock.now()),
            _ending(_ACKNOWLEDGED),
        )
        if self._gate is not None:
            await self._gate.ended(task)
        return cancelled

    async def report_progress(self, task: Task, progress: Progress) -> Task:
        token = _token(task)
        return await self._fenced(
            task, lambda t: t.report_progress(token, progress, now=self._clock.now())
        )

    async def renew(self, leases: Mapping[UUID, UUID]) -> Renewal:
        """Extend the leases (task id → token) of running tasks: ``Task.renew_lease`` on each.

        The answer names the leases still held, and the tasks among them whose cancel was
        requested, which their worker should stop.
        """
        if not leases:
            return Renewal(frozenset())
        if self._gate is None:
            return await self._repo.renew_leases(leases, lease_seconds=self.lease_seconds)
        began = self._clock.now()
        renewal = await self._repo.renew_leases(leases, lease_seconds=self.lease_seconds)
        # Counted from before the store renewed, so that a slot never outlasts its lease.
        spent = (self._clock.now() - began).total_seconds()
        remaining = max(0.0, self.lease_seconds - spent)
        await self._gate.renew(list(renewal.held), lease_seconds=remaining)
        return renewal

    async def reap(self, *, limit: int = 500) -> list[Task]:
        """Turn every expired lease into a failed attempt (``WorkerLost``)."""
        return await self._expire(await self._repo.expired(limit=limit), holder_gone=False)

    async def take_back_orphans(self, *, limit: int = 500) -> list[Task]:
        """Fail every running attempt as ``WorkerLost`` without waiting for its lease to end.

        Only for a process that knows it is the sole worker of its store (``taskflow dev``,
        holding the store's lock): whatever runs there was left by a process that died.
        """
        taken: list[Task] = []
        while True:
            running = await self._repo.expired(limit=limit, horizon_seconds=None)
            if not running:
                return taken
            expired = await self._expire(running, holder_gone=True)
            taken += expired
            if not expired:
                return taken

    async def _expire(self, tasks: Sequence[Task], *, holder_gone: bool) -> list[Task]:
        reaped: list[Task] = []
        for task in tasks:
            now = self._clock.now()
            if task.lease is None or (task.lease.expires_at > now and not holder_gone):
                continue  # our clock is behind the store's; the next sweep takes it
            changed = task.expire_lease(now=now, rand=self._rand(), holder_gone=holder_gone)
            try:
                ending = AttemptEnd.of(task, changed, _LOST, changed.error)
                await self._repo.save(changed, closing=ending)
            except StaleTask:
                continue  # renewed, finished or reaped by someone else meanwhile
            reaped.append(changed)
        await dispatch(self._queue, reaped)
        return reaped

    async def prune_idempotency_keys(self) -> int:
        """Forget idempotency keys kept longer than IDEMPOTENCY_KEY_TTL; returns how many."""
        return await self._repo.prune_idempotency_keys(self._clock.now() - IDEMPOTENCY_KEY_TTL)

    async def reconcile(self, *, after: UUID | None, limit: int = 5000) -> Reconciled:
        """Give the queue back every PENDING task it lacks; safe to run in many processes.

        When the queue says it lost its contents (restart, flush, a fresh in-process queue),
        everything PENDING is pushed again. Otherwise one page of PENDING tasks (by id, after
        ``after``) is checked and the missing ones pushed: ids popped by a worker that died
        before claiming them, or never pushed because the API or Redis failed after the insert.
        Pushes are idempotent and claims conditional, so overlapping runs do no harm.
        """
        if not await self._queue.intact():
            if self._gate is not None:
                # The slots went with the ids: the running tasks hold them again before the
                # marker lets any other process push ids that a worker would admit.
                running = await self._repo.expired(limit=RESTORED_SLOTS, horizon_seconds=None)
                await self._gate.restore(running)
            await self._queue.mark_intact()  # first: a flush during the refill clears it again
            return Reconciled(pushed=await self.redispatch(), resync=True, cursor=None)
        page = await self._repo.pending(after=after, limit=limit)
        missing = await self._queue.absent(page)
        await self._queue.push(missing)
        cursor = page[-1].task_id if len(page) == limit else None
        return Reconciled(pushed=len(missing), resync=False, cursor=cursor)

    async def queue_warnings(self) -> list[str]:
        return await self._queue.warnings()

    async def dispatch_stored(self, task_ids: Sequence[UUID]) -> int:
        """Push those of ``task_ids`` that are PENDING (tasks a caller's transaction added and
        committed) to the queue; returns how many."""
        found = await self._repo.get_many(list(task_ids))
        pending = [task for task in found if task.status is TaskStatus.PENDING]
        await dispatch(self._queue, pending)
        return len(pending)

    async def redispatch(self, *, batch: int = 1000) -> int:
        """Push every PENDING task to the queue again (idempotent); returns how many."""
        count = 0
        after: UUID | None = None
        while True:
            dispatches = await self._repo.pending(after=after, limit=batch)
            if not dispatches:
                return count
            await self._queue.push(dispatches)
            count += len(dispatches)
            after = dispatches[-1].task_id

    async def _requeue_unclaimed(self, ids: set[UUID]) -> list[UUID]:
        # An id we popped but could not claim is either taken, final, or not yet due by the
        # store's clock. Only the last must go back, or it would wait for the reconciler.
        # An id the store does not know is returned: someone else writes into our queue.
        found = await self._repo.get_many(list(ids))
        await dispatch(self._queue, [t for t in found if t.status is TaskStatus.PENDING])
        return sorted(ids - {t.id for t in found})

    async def _fenced(
        self,
        task: Task,
        change: Callable[[Task], Task],
        ending: Callable[[Task, Task], AttemptEnd] | None = None,
    ) -> Task:
        """Apply ``change`` while this worker's lease holds; re-read when another writer won.

        ``ending``, given the task before and after the change, says how the attempt ended;
        it is saved with the change.
        """
        token = _token(task)
        current = task
        for _ in range(CAS_ATTEMPTS):
            try:
                changed = change(current)
            except InvalidTransition:
                if current is not task:
                    raise
                # Our copy may predate a change that makes this transition fit (a cancel
                # request, say): decide again on what the store holds now.
                current = await self._held(task.id, token)
                changed = change(current)
            try:
                closing = ending(current, changed) if ending else None
                await self._repo.save(changed, closing=closing)
            except StaleTask:
                current = await self._held(task.id, token)
                continue
            return changed
        raise LeaseLost(f"task {task.id}: gave up after repeated concurrent changes")

    async def _held(self, task_id: UUID, token: UUID) -> Task:
        current = await self._repo.get(task_id)
        if not current.holds(token):
            raise LeaseLost(f"task {task_id}: this worker's attempt lost its lease")
        return current


def _ending(
    outcomes: Mapping[TaskStatus, AttemptOutcome], error: TaskError | None = None
) -> Callable[[Task, Task], AttemptEnd]:
    return lambda before, after: AttemptEnd.of(before, after, outcomes, error)


def _token(task: Task) -> UUID:
    if task.lease is None:
        raise LeaseLost(f"task {task.id} holds no lease")
    return task.lease.token
