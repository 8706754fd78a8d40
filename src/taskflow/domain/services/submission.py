"""What producers and operators do: submit, look up, cancel, retry."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from taskflow.domain.attempts import Attempt
from taskflow.domain.callbacks import CallbackHosts, callback_url_problem
from taskflow.domain.changes import ChangeAction, TaskChange
from taskflow.domain.deliveries import Delivery
from taskflow.domain.errors import (
    InvalidQuery,
    InvalidSubmission,
    QueueUnavailable,
    QuotaExceeded,
    StaleTask,
    UnstorableValue,
)
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.limits import (
    RETRY_MANY_LIMIT_DEFAULT,
    actor_problem,
    idempotency_key_problem,
    retry_many_limit_problem,
)
from taskflow.domain.model import RETRYABLE, Task
from taskflow.domain.ports import (
    CallbackStore,
    CancelNotices,
    Clock,
    TaskQueue,
    TaskRepository,
    TaskTypes,
    TraceContext,
)
from taskflow.domain.queries import Page, Position, TaskCount, TaskQuery, checked_limit
from taskflow.domain.quotas import Quota
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services.building import Submission, TaskBuilder
from taskflow.domain.services.dispatching import CAS_ATTEMPTS, dispatch
from taskflow.domain.services.quotas import QuotaService
from taskflow.domain.tenants import owned, scoped_key
from taskflow.domain.throughput import WINDOW_MINUTES, Minute, per_minute, window_start

#: Who made a change, when the caller does not say (a Python caller of the service).
UNKNOWN_ACTOR = "unknown"


class TaskService:
    """What producers and operators do: submit, look up, cancel, retry."""

    def __init__(
        self,
        *,
        repository: TaskRepository,
        queue: TaskQueue,
        types: TaskTypes,
        clock: Clock,
        new_id: Callable[[], UUID],
        retry_policy: RetryPolicy,
        cancel_notices: CancelNotices | None = None,
        callbacks: CallbackStore | None = None,
        callback_hosts: CallbackHosts | None = None,
        trace: TraceContext | None = None,
        quotas: QuotaService | None = None,
    ) -> None:
        """``callback_hosts`` None: webhooks are off (no TASKFLOW_WEBHOOK_SECRET), and a
        submission with a ``callback_url`` is refused. ``trace``: tracing is on, and each new
        task joins the submitter's trace (decision 28). ``quotas``: some tenant has a quota
        (decision 37); a submission of a tenant without one costs a dict lookup."""
        self._repo = repository
        self._callbacks = callbacks
        self._callback_hosts = callback_hosts
        self._notices = cancel_notices
        self._queue = queue
        self._clock = clock
        self._builder = TaskBuilder(
            types=types, new_id=new_id, retry_policy=retry_policy, trace=trace
        )
        self._quota_of: Callable[[str], Quota | None] = _no_quota
        self._admit: Callable[[str, Quota, int], Awaitable[None]] = _admit_all
        if quotas is not None:
            self._quota_of, self._admit = quotas.of, quotas.admit

    async def submit(self, command: Submission, *, tenant: str = DEFAULT_TENANT) -> Task:
        if command.callback_url is not None:
            [task], _ = await self._submit_calling_back([command], batch=False, tenant=tenant)
            return task
        task = self._builder.build(command, self._clock.now(), command.idempotency_key, tenant)
        quota = self._quota_of(tenant)
        if quota is not None:
            await self._admit(tenant, quota, 1)
        await self._repo.add(task)
        await dispatch(self._queue, [task])
        return task

    async def submit_many(
        self, commands: Sequence[Submission], *, tenant: str = DEFAULT_TENANT
    ) -> list[Task]:
        """Submit a batch, all or none; a fault names its submission (``tasks[3].type``)."""
        if any(command.callback_url is not None for command in commands):
            return (await self._submit_calling_back(commands, batch=True, tenant=tenant))[0]
        now = self._clock.now()
        tasks = self._builder.build_all(commands, now, batch=True, tenant=tenant)
        quota = self._quota_of(tenant)
        if quota is not None:
            await self._admit(tenant, quota, len(tasks))
        with _naming_the_task(tasks, batch=True):
            await self._repo.add_many(tasks)
        await dispatch(self._queue, tasks)
        return tasks

    async def submit_idempotent(
        self,
        commands: Sequence[Submission],
        *,
        key: str,
        request_hash: str,
        batch: bool = True,
        tenant: str = DEFAULT_TENANT,
    ) -> tuple[list[Task], bool]:
        """Submit ``commands`` (all sharing ``key``) unless ``key`` was seen: then nothing new.

        Returns the tasks, as they are now, and whether this was a replay of an earlier
        submission with the same ``request_hash``. A different hash: IdempotencyKeyReused.
        ``batch=False``: one submission of its own, whose faults name no ``tasks[i]``.
        A key is the tenant's own: the same key from two tenants makes two submissions.
        """
        problem = idempotency_key_problem(key)
        if problem:
            raise InvalidSubmission(problem, field="Idempotency-Key")
        if any(command.callback_url is not None for command in commands):
            return await self._submit_calling_back(
                commands, batch=batch, key=key, request_hash=request_hash, tenant=tenant
            )
        now = self._clock.now()
        tasks = self._builder.build_all(commands, now, key, batch=batch, tenant=tenant)
        quota = self._quota_of(tenant)
        if quota is not None:
            replay = await self._admitted_or_replay(tenant, quota, tasks, key, request_hash)
            if replay is not None:
                return replay, True
        with _naming_the_task(tasks, batch=batch):
            stored, replayed = await self._repo.add_idempotent(
                tasks, key=scoped_key(tenant, key), request_hash=request_hash
            )
        if not replayed:
            await dispatch(self._queue, stored)
        return stored, replayed

    async def _submit_calling_back(
        self,
        commands: Sequence[Submission],
        *,
        batch: bool,
        key: str | None = None,
        request_hash: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> tuple[list[Task], bool]:
        """Submissions of which some have a ``callback_url``: the tasks and their callbacks are
        stored in one transaction, so a task that ends is always called back (decision 23)."""
        for index, command in enumerate(commands):
            problem = self._callback_problem(command.callback_url)
            if problem:
                field = f"tasks[{index}].callback_url" if batch else "callback_url"
                raise InvalidSubmission(problem, field=field)
        now = self._clock.now()
        tasks = self._builder.build_all(commands, now, key, batch=batch, tenant=tenant)
        urls = {
            task.id: command.callback_url
            for task, command in zip(tasks, commands, strict=True)
            if command.callback_url is not None
        }
        quota = self._quota_of(tenant)
        if quota is not None:
            replay = await self._admitted_or_replay(tenant, quota, tasks, key, request_hash)
            if replay is not None:
                return replay, True
        assert self._callbacks is not None  # _callback_problem refuses every URL without it
        with _naming_the_task(tasks, batch=batch):
            stored, replayed = await self._callbacks.add(
                tasks,
                urls,
                key=None if key is None else scoped_key(tenant, key),
                request_hash=request_hash,
            )
        if not replayed:
            await dispatch(self._queue, stored)
        return stored, replayed

    async def _admitted_or_replay(
        self,
        tenant: str,
        quota: Quota,
        tasks: Sequence[Task],
        key: str | None,
        request_hash: str | None,
    ) -> list[Task] | None:
        """None once ``tasks`` passed the tenant's quota. Refused, a request that repeats an
        earlier one with its Idempotency-Key gets that one's tasks instead: a replay stores
        nothing, so no quota refuses it (decision 37)."""
        try:
            await self._admit(tenant, quota, len(tasks))
        except QuotaExceeded:
            if key is None or request_hash is None:
                raise
            replay = await self._repo.replay(scoped_key(tenant, key), request_hash)
            if replay is None:
                raise
            return replay
        return None

    def _callback_problem(self, url: str | None) -> str | None:
        if url is None:
            return None
        hosts = self._callback_hosts if self._callbacks is not None else None
        return callback_url_problem(url, hosts)

    async def deliveries(
        self, task_id: UUID, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[str | None, list[Delivery]]:
        """The task's callback URL (None: it has none) and its webhook deliveries, oldest
        first; TaskNotFound."""
        await self.get(task_id, tenant=tenant)
        if self._callbacks is None:
            return None, []
        return await self._callbacks.deliveries(task_id)

    async def get(self, task_id: UUID, *, tenant: str = DEFAULT_TENANT) -> Task:
        """The task; TaskNotFound, as for an unknown id, when it is another tenant's."""
        return owned(await self._repo.get(task_id), tenant)

    async def attempts(self, task_id: UUID, *, tenant: str = DEFAULT_TENANT) -> list[Attempt]:
        """The task's attempts, oldest first."""
        await self.get(task_id, tenant=tenant)
        return await self._repo.attempts(task_id)

    async def cancel(self, task_id: UUID, *, tenant: str = DEFAULT_TENANT) -> Task:
        """PENDING: CANCELLED at once. PROCESSING: ``cancel_requested``, and its worker told.

        The notice only hastens the stop: the worker's next lease renewal finds the request
        whether or not the notice arrives.
        """
        task = await self._change(task_id, tenant, lambda t: t.cancel(now=self._clock.now()))
        if task.cancel_requested and self._notices is not None:
            with contextlib.suppress(QueueUnavailable):
                await self._notices.notify_cancel(task.id)
        return task

    async def retry(
        self,
        task_id: UUID,
        *,
        payload: Mapping[str, Any] | None = None,
        by: str = UNKNOWN_ACTOR,
        tenant: str = DEFAULT_TENANT,
    ) -> Task:
        """A FAILED or CANCELLED task PENDING again; ``payload``, checked like a submission's,
        replaces its own. The change is recorded, with ``by``, in the task's history."""
        _check_actor(by)
        for _ in range(CAS_ATTEMPTS):
            task = await self.get(task_id, tenant=tenant)
            if payload is not None:
                self._builder.check_payload(task.type, payload)
            again = task.retry(now=self._clock.now(), payload=payload)
            change = TaskChange.between(task, again, ChangeAction.RETRY, by=by)
            if await self._repo.save_changed([(again, change)]):
                await dispatch(self._queue, [again])
                return again
        raise StaleTask(f"task {task_id} kept changing; try again")

    async def retry_many(
        self, query: TaskQuery, *, limit: int | None = None, by: str = UNKNOWN_ACTOR
    ) -> list[Task]:
        """Retry up to ``limit`` of the FAILED or CANCELLED tasks ``query`` picks, newest first.

        Each is revived only if no one changed it since it was read, so two bulk retries at
        once never revive a task twice; repeating one revives the next ``limit`` still there.
        """
        _check_actor(by)
        size = checked_limit(
            limit, default=RETRY_MANY_LIMIT_DEFAULT, problem_of=retry_many_limit_problem
        )
        statuses = query.statuses or RETRYABLE
        if not statuses <= RETRYABLE:
            wrong = ", ".join(sorted(statuses - RETRYABLE))
            raise InvalidQuery(
                f"status: only FAILED or CANCELLED tasks can be retried, not {wrong}",
                field="status",
            )
        found = await self._repo.find(replace(query, statuses=statuses), after=None, limit=size)
        now = self._clock.now()
        changes = []
        for task in found:
            again = task.retry(now=now)
            changes.append((again, TaskChange.between(task, again, ChangeAction.RETRY, by=by)))
        written = await self._repo.save_changed(changes) if changes else set()
        revived = [task for task, _ in changes if task.id in written]
        await dispatch(self._queue, revived)
        return revived

    async def history(
        self, task_id: UUID, *, tenant: str = DEFAULT_TENANT
    ) -> tuple[list[Attempt], list[TaskChange]]:
        """The task's attempts and the changes people made to it, each oldest first."""
        attempts = await self.attempts(task_id, tenant=tenant)
        return attempts, await self._repo.changes(task_id)

    async def _change(self, task_id: UUID, tenant: str, change: Callable[[Task], Task]) -> Task:
        for _ in range(CAS_ATTEMPTS):
            changed = change(await self.get(task_id, tenant=tenant))
            try:
                await self._repo.save(changed)
            except StaleTask:
                continue
            return changed
        raise StaleTask(f"task {task_id} kept changing; try again")

    async def find(
        self, query: TaskQuery, *, after: Position | None = None, limit: int | None = None
    ) -> Page:
        """A page of the tasks ``query`` picks, newest first, starting after ``after``;
        ``limit`` (default ``LIST_LIMIT_DEFAULT``) out of range: InvalidQuery."""
        size = checked_limit(limit)
        return Page.of(await self._repo.find(query, after=after, limit=size + 1), size)

    async def stats(self, *, tenant: str = DEFAULT_TENANT) -> list[TaskCount]:
        """How many of the tenant's tasks there are per queue, type and status."""
        return await self._repo.stats(tenant=tenant)

    async def finished_per_minute(
        self, minutes: int = WINDOW_MINUTES, *, tenant: str = DEFAULT_TENANT
    ) -> list[Minute]:
        """The last ``minutes`` whole minutes, oldest first, the last being the minute of now:
        how many of the tenant's tasks succeeded, failed and were cancelled in each."""
        since = window_start(self._clock.now(), minutes)
        counted = await self._repo.finished_per_minute(since, tenant=tenant)
        return per_minute(counted, since, minutes)


def _no_quota(tenant: str) -> None:
    return None


async def _admit_all(tenant: str, quota: Quota, count: int) -> None:
    return None


def _check_actor(by: str) -> None:
    problem = actor_problem(by)
    if problem:
        raise InvalidSubmission(problem, field="actor")


@contextlib.contextmanager
def _naming_the_task(tasks: Sequence[Task], *, batch: bool) -> Iterator[None]:
    """The store's refusal of one task of a batch, naming that task's place in the batch."""
    try:
        yield
    except UnstorableValue as exc:
        index = next((i for i, t in enumerate(tasks) if t.id == exc.task_id), None)
        if not batch or index is None:
            raise
        raise exc.under(f"tasks[{index}]") from None
