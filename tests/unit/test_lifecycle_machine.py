"""Any command on any task either follows the life cycle's table or changes nothing."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from taskflow.domain.errors import InvalidTransition, NotDue
from taskflow.domain.model import ALLOWED, FINAL, Lease, Progress, Task, TaskError, TaskStatus
from taskflow.domain.retry import RetryPolicy

START = datetime(2024, 5, 1, tzinfo=UTC)
NEVER_ISSUED = UUID(int=0)
BOOM = TaskError("RuntimeError", "boom")

policies = st.builds(
    RetryPolicy,
    base=st.floats(min_value=0.01, max_value=30),
    max=st.floats(min_value=1, max_value=600),
)
retry_afters = st.none() | st.floats(min_value=0, max_value=3600)

TokenCommand = Callable[[Task, UUID, datetime], Task]
TOKEN_COMMANDS: list[TokenCommand] = [
    lambda t, token, now: t.succeed(token, "done", now=now),
    lambda t, token, now: t.fail(token, BOOM, now=now, rand=0.5),
    lambda t, token, now: t.fail(token, BOOM, now=now, rand=0.5, final=True),
    lambda t, token, now: t.release(token, now=now),
    lambda t, token, now: t.acknowledge_cancel(token, now=now),
    lambda t, token, now: t.report_progress(token, Progress(0.5, "half"), now=now),
    lambda t, token, now: t.renew_lease(token, now=now, lease_seconds=30),
]


class LifecycleMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.current: dict[UUID, Task] = {}
        self.tokens_issued: list[UUID] = []
        self._ids = itertools.count(1)

    # -- the world ----------------------------------------------------------------------------

    @initialize(target=tasks, max_retries=st.integers(0, 25), offset=st.integers(-600, 600))
    def first_task(self, max_retries: int, offset: int) -> UUID:
        return self._new_task(max_retries, offset, RetryPolicy())

    @rule(
        target=tasks,
        max_retries=st.integers(0, 25),
        offset=st.integers(-600, 600),
        policy=policies,
    )
    def submit(self, max_retries: int, offset: int, policy: RetryPolicy) -> UUID:
        return self._new_task(max_retries, offset, policy)

    @rule(seconds=st.integers(0, 900))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- commands -----------------------------------------------------------------------------

    @rule(task_id=tasks, lease_seconds=st.integers(1, 120))
    def claim(self, task_id: UUID, lease_seconds: int) -> None:
        token = self._new_uuid()
        self.tokens_issued.append(token)
        lease = Lease(token, "worker", self.now + timedelta(seconds=lease_seconds))
        self._apply(task_id, lambda t: t.claim(lease, now=self.now))

    @rule(task_id=tasks)
    def succeed(self, task_id: UUID) -> None:
        self._apply(task_id, lambda t: t.succeed(self._token(t), {"n": 1}, now=self.now))

    @rule(task_id=tasks, rand=st.floats(0, 1), retry_after=retry_afters, final=st.booleans())
    def fail(self, task_id: UUID, rand: float, retry_after: float | None, final: bool) -> None:
        self._apply(
            task_id,
            lambda t: t.fail(
                self._token(t), BOOM, now=self.now, rand=rand, retry_after=retry_after, final=final
            ),
        )

    @rule(task_id=tasks, rand=st.floats(0, 1))
    def expire_lease(self, task_id: UUID, rand: float) -> None:
        self._apply(task_id, lambda t: t.expire_lease(now=self.now, rand=rand))

    @rule(task_id=tasks)
    def release(self, task_id: UUID) -> None:
        self._apply(task_id, lambda t: t.release(self._token(t), now=self.now))

    @rule(task_id=tasks)
    def cancel(self, task_id: UUID) -> None:
        self._apply(task_id, lambda t: t.cancel(now=self.now))

    @rule(task_id=tasks)
    def acknowledge_cancel(self, task_id: UUID) -> None:
        self._apply(task_id, lambda t: t.acknowledge_cancel(self._token(t), now=self.now))

    @rule(task_id=tasks)
    def retry(self, task_id: UUID) -> None:
        self._apply(task_id, lambda t: t.retry(now=self.now))

    @rule(task_id=tasks, fraction=st.floats(0, 1))
    def report_progress(self, task_id: UUID, fraction: float) -> None:
        progress = Progress(fraction, "working")
        self._apply(task_id, lambda t: t.report_progress(self._token(t), progress, now=self.now))

    @rule(task_id=tasks, seconds=st.integers(1, 120))
    def renew_lease(self, task_id: UUID, seconds: int) -> None:
        before = self.current[task_id]
        try:
            after = before.renew_lease(self._token(before), now=self.now, lease_seconds=seconds)
        except InvalidTransition:
            assert (
                not before.holds(self._token(before))
                or before.lease is None
                or (before.lease.expires_at <= self.now)
            )
            return
        # A renewal is not a change of the task: only the lease's expiry moves, forward.
        assert before.lease is not None
        assert after.lease is not None
        assert after.lease.expires_at == self.now + timedelta(seconds=seconds)
        assert before.lease.expires_at > self.now
        assert replace(after, lease=before.lease) == before
        self.current[task_id] = after

    @rule(task_id=tasks, command=st.sampled_from(TOKEN_COMMANDS), data=st.data())
    def with_a_wrong_token(self, task_id: UUID, command: TokenCommand, data: st.DataObject) -> None:
        task = self.current[task_id]
        held = task.lease.token if task.lease else None
        wrong = [t for t in [NEVER_ISSUED, *self.tokens_issued] if t != held]
        token = data.draw(st.sampled_from(wrong), label="wrong token")
        before = deepcopy(task)

        try:
            command(task, token, self.now)
        except InvalidTransition:
            assert task == before
        else:
            raise AssertionError(f"a wrong token changed a {task.status} task")

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def every_task_keeps_its_invariants(self) -> None:
        for task in self.current.values():
            assert 0 <= task.retry_count <= task.max_retries
            assert task.retry_count <= task.attempts
            assert not task.cancel_requested or task.status is TaskStatus.PROCESSING
            assert (task.lease is not None) == (task.status is TaskStatus.PROCESSING)
            assert (task.finished_at is not None) == (task.status in FINAL)

    # -- internals ----------------------------------------------------------------------------

    def _apply(self, task_id: UUID, command: Callable[[Task], Task]) -> None:
        before = self.current[task_id]
        snapshot = deepcopy(before)
        try:
            after = command(before)
        except (InvalidTransition, NotDue) as refused:
            event(f"{before.status} refused: {type(refused).__name__}")
            assert before == snapshot
            return
        event(f"{before.status} -> {after.status}")
        assert before.status is not TaskStatus.SUCCESS
        assert after.status in ALLOWED[before.status]
        assert after.version == before.version + 1
        assert after.attempts >= before.attempts
        assert after.updated_at == self.now
        self.current[task_id] = after

    def _token(self, task: Task) -> UUID:
        return task.lease.token if task.lease else NEVER_ISSUED

    def _new_task(self, max_retries: int, offset: int, policy: RetryPolicy) -> UUID:
        task = Task.new(
            id=self._new_uuid(),
            type="machine.step",
            payload={"k": [1, 2]},
            now=self.now,
            run_at=self.now + timedelta(seconds=offset),
            max_retries=max_retries,
            retry_policy=policy,
        )
        self.current[task.id] = task
        return task.id

    def _new_uuid(self) -> UUID:
        return UUID(int=next(self._ids))


TestLifecycle = LifecycleMachine.TestCase
# Longer runs than the default 50 steps, so FAILED → retry → PENDING is reached routinely.
TestLifecycle.settings = settings(stateful_step_count=100)
