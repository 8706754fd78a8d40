"""Each transition of the life cycle, one at a time, and the invariants a task refuses to break."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from taskflow.domain.errors import InvalidTransition, InvariantViolated, NotDue
from taskflow.domain.limits import type_name_problem
from taskflow.domain.model import (
    WORKER_LOST,
    Lease,
    Progress,
    Task,
    TaskError,
    TaskStatus,
    assemble,
)
from taskflow.domain.retry import RetryPolicy

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
TOKEN = UUID(int=1)
OTHER_TOKEN = UUID(int=2)
POLICY = RetryPolicy(base=4.0, max=100.0)
BOOM = TaskError("ValueError", "boom")


def pending(**changes: Any) -> Task:
    task = Task.new(
        id=UUID(int=99), type="mail.send", payload={"to": "a@b.c"}, now=NOW, retry_policy=POLICY
    )
    return replace(task, **changes)


def running(*, lease_seconds: float = 30, **changes: Any) -> Task:
    lease = Lease(TOKEN, "worker-1", NOW + timedelta(seconds=lease_seconds))
    return pending(**changes).claim(lease, now=NOW)


def succeeded() -> Task:
    return running().succeed(TOKEN, {"ok": True}, now=LATER)


def failed() -> Task:
    return running().fail(TOKEN, BOOM, now=LATER, rand=0.5, final=True)


def cancelled() -> Task:
    return pending().cancel(now=LATER)


FINAL_STATES = [
    pytest.param(succeeded, id="SUCCESS"),
    pytest.param(failed, id="FAILED"),
    pytest.param(cancelled, id="CANCELLED"),
]


# -- claim ------------------------------------------------------------------------------------


def test_claim_starts_an_attempt_and_issues_the_lease() -> None:
    task = pending(attempts=2)
    lease = Lease(TOKEN, "worker-1", LATER)

    claimed = task.claim(lease, now=NOW)

    assert claimed.status is TaskStatus.PROCESSING
    assert claimed.attempts == 3
    assert claimed.started_at == NOW
    assert claimed.lease == lease
    assert claimed.version == task.version + 1
    assert claimed.updated_at == NOW


def test_claim_is_refused_before_run_at() -> None:
    task = pending(run_at=LATER)

    with pytest.raises(NotDue):
        task.claim(Lease(TOKEN, "worker-1", LATER), now=LATER - timedelta(microseconds=1))
    assert task.claim(Lease(TOKEN, "worker-1", LATER), now=LATER).attempts == 1


@pytest.mark.parametrize("make", [running, *FINAL_STATES])
def test_claim_is_refused_unless_pending(make: Callable[[], Task]) -> None:
    with pytest.raises(InvalidTransition):
        make().claim(Lease(OTHER_TOKEN, "worker-2", LATER), now=LATER)


# -- succeed ----------------------------------------------------------------------------------


def test_succeed_with_the_lease_records_the_result() -> None:
    done = running().succeed(TOKEN, {"sent": 3}, now=LATER)

    assert done.status is TaskStatus.SUCCESS
    assert done.result == {"sent": 3}
    assert done.finished_at == LATER
    assert done.lease is None


def test_succeed_with_another_token_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        running().succeed(OTHER_TOKEN, None, now=LATER)


def test_succeed_without_a_running_attempt_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        pending().succeed(TOKEN, None, now=LATER)


# -- fail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rand", [0.0, 0.3, 1.0])
def test_fail_with_retries_left_backs_off(rand: float) -> None:
    task = running(retry_count=2, attempts=2)  # the third retry: d = 4 * 2**2 = 16 s

    again = task.fail(TOKEN, BOOM, now=LATER, rand=rand)

    assert again.status is TaskStatus.PENDING
    assert again.retry_count == 3
    assert again.error == BOOM
    assert LATER + timedelta(seconds=8) <= again.run_at <= LATER + timedelta(seconds=16)
    assert again.lease is None
    assert again.finished_at is None


def test_fail_without_retries_left_is_final() -> None:
    task = running(max_retries=2, retry_count=2, attempts=2)

    dead = task.fail(TOKEN, BOOM, now=LATER, rand=0.5)

    assert dead.status is TaskStatus.FAILED
    assert dead.finished_at == LATER
    assert dead.retry_count == 2
    assert dead.error == BOOM


def test_fail_marked_final_skips_the_retries() -> None:
    dead = running().fail(TOKEN, BOOM, now=LATER, rand=0.5, final=True)

    assert dead.status is TaskStatus.FAILED
    assert dead.retry_count == 0
    assert dead.finished_at == LATER


def test_retry_after_replaces_the_backoff() -> None:
    again = running().fail(TOKEN, BOOM, now=LATER, rand=1.0, retry_after=90)

    assert again.run_at == LATER + timedelta(seconds=90)
    assert again.retry_count == 1


def test_fail_with_another_token_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        running().fail(OTHER_TOKEN, BOOM, now=LATER, rand=0.5)


def test_failure_after_a_cancel_request_cancels_instead_of_retrying() -> None:
    task = running().cancel(now=NOW)

    ended = task.fail(TOKEN, BOOM, now=LATER, rand=0.5)

    assert ended.status is TaskStatus.CANCELLED
    assert ended.finished_at == LATER
    assert not ended.cancel_requested


# -- expire_lease -----------------------------------------------------------------------------


def test_expired_lease_is_a_failed_attempt_by_a_lost_worker() -> None:
    task = running(lease_seconds=30)

    lost = task.expire_lease(now=NOW + timedelta(seconds=30), rand=0.0)

    assert lost.status is TaskStatus.PENDING
    assert lost.error is not None
    assert lost.error.type == WORKER_LOST
    assert lost.retry_count == 1
    assert lost.run_at == NOW + timedelta(seconds=30 + 2)  # rand 0: d/2 with d = 4


def test_expired_lease_on_the_last_retry_fails_the_task() -> None:
    lost = running(max_retries=0).expire_lease(now=LATER, rand=0.5)

    assert lost.status is TaskStatus.FAILED
    assert lost.error is not None
    assert lost.error.type == WORKER_LOST


def test_a_lease_still_running_cannot_expire() -> None:
    with pytest.raises(InvalidTransition):
        running(lease_seconds=30).expire_lease(now=NOW + timedelta(seconds=29), rand=0.5)


# -- release ----------------------------------------------------------------------------------


def test_release_hands_the_attempt_back_without_counting_it() -> None:
    task = running(retry_count=1, attempts=1)

    back = task.release(TOKEN, now=LATER)

    assert back.status is TaskStatus.PENDING
    assert back.retry_count == 1
    assert back.attempts == 2
    assert back.run_at == LATER
    assert back.lease is None


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_pending_task_is_immediate() -> None:
    gone = pending().cancel(now=LATER)

    assert gone.status is TaskStatus.CANCELLED
    assert gone.finished_at == LATER


def test_cancel_of_a_running_task_is_a_request() -> None:
    task = running()

    asked = task.cancel(now=LATER)

    assert asked.status is TaskStatus.PROCESSING
    assert asked.cancel_requested
    assert asked.lease == task.lease
    assert asked.finished_at is None


@pytest.mark.parametrize("make", FINAL_STATES)
def test_cancel_of_a_final_task_is_refused(make: Callable[[], Task]) -> None:
    with pytest.raises(InvalidTransition):
        make().cancel(now=LATER)


def test_acknowledged_cancel_ends_the_task() -> None:
    ended = running().cancel(now=NOW).acknowledge_cancel(TOKEN, now=LATER)

    assert ended.status is TaskStatus.CANCELLED
    assert ended.finished_at == LATER
    assert ended.lease is None
    assert not ended.cancel_requested


def test_acknowledge_cancel_needs_a_request() -> None:
    with pytest.raises(InvalidTransition):
        running().acknowledge_cancel(TOKEN, now=LATER)


def test_release_after_a_cancel_request_cancels() -> None:
    ended = running().cancel(now=NOW).release(TOKEN, now=LATER)

    assert ended.status is TaskStatus.CANCELLED
    assert ended.finished_at == LATER


# -- retry ------------------------------------------------------------------------------------


def test_retry_of_a_failed_task_starts_over_and_keeps_the_history() -> None:
    task = running(max_retries=1, retry_count=1, attempts=1).fail(TOKEN, BOOM, now=NOW, rand=0)
    later = LATER + timedelta(hours=1)

    again = task.retry(now=later)

    assert again.status is TaskStatus.PENDING
    assert again.retry_count == 0
    assert again.run_at == later
    assert again.finished_at is None
    assert again.attempts == 2
    assert again.error == BOOM


def test_retry_of_a_cancelled_task_makes_it_pending() -> None:
    again = cancelled().retry(now=LATER)

    assert again.status is TaskStatus.PENDING
    assert again.finished_at is None
    assert not again.cancel_requested


@pytest.mark.parametrize("make", [pending, running, succeeded])
def test_retry_is_refused_unless_failed_or_cancelled(make: Callable[[], Task]) -> None:
    with pytest.raises(InvalidTransition):
        make().retry(now=LATER)


# -- SUCCESS is final -------------------------------------------------------------------------

COMMANDS_ON_SUCCESS: list[Callable[[Task], Task]] = [
    lambda t: t.claim(Lease(OTHER_TOKEN, "w", LATER), now=LATER),
    lambda t: t.succeed(TOKEN, None, now=LATER),
    lambda t: t.fail(TOKEN, BOOM, now=LATER, rand=0.5),
    lambda t: t.expire_lease(now=LATER + timedelta(days=1), rand=0.5),
    lambda t: t.release(TOKEN, now=LATER),
    lambda t: t.cancel(now=LATER),
    lambda t: t.acknowledge_cancel(TOKEN, now=LATER),
    lambda t: t.retry(now=LATER),
    lambda t: t.report_progress(TOKEN, Progress(0.5), now=LATER),
    lambda t: t.renew_lease(TOKEN, now=LATER, lease_seconds=60),
]


@pytest.mark.parametrize("command", COMMANDS_ON_SUCCESS)
def test_success_is_final_for_ever(command: Callable[[Task], Task]) -> None:
    with pytest.raises(InvalidTransition):
        command(succeeded())


# -- invariants -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "changes"),
    [
        (pending, {"retry_count": -1}),
        (pending, {"max_retries": 2, "retry_count": 3, "attempts": 3}),
        (pending, {"retry_count": 1, "attempts": 0}),
        (pending, {"max_retries": 26}),
        (pending, {"priority": 10}),
        (pending, {"priority": -1}),
        (pending, {"cancel_requested": True}),
        (pending, {"lease": Lease(TOKEN, "w", LATER)}),
        (pending, {"finished_at": NOW}),
        (pending, {"version": 0}),
        (running, {"lease": None}),
        (succeeded, {"finished_at": None}),
        (succeeded, {"cancel_requested": True}),
    ],
)
def test_a_task_breaking_an_invariant_cannot_exist(
    make: Callable[[], Task], changes: dict[str, Any]
) -> None:
    task = make()
    with pytest.raises(InvariantViolated):
        replace(task, **changes)


# -- type names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "send", "billing.send_invoice", "a1_b.c2.3d", "x" * 128])
def test_valid_type_names_are_accepted(name: str) -> None:
    assert type_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "_abc",
        "Billing",
        "billing.",
        ".billing",
        "a..b",
        "a.B",
        "a-b",
        "a b",
        "abc\n",
        "x" * 129,
    ],
)
def test_invalid_type_names_are_refused(name: str) -> None:
    assert type_name_problem(name) is not None


def test_a_success_after_a_failure_clears_the_error() -> None:
    retried = running().fail(TOKEN, BOOM, now=LATER, rand=0.5)
    assert retried.error == BOOM
    again = retried.claim(Lease(OTHER_TOKEN, "w", LATER + timedelta(days=1)), now=retried.run_at)
    done = again.succeed(OTHER_TOKEN, {"ok": True}, now=retried.run_at)
    assert done.error is None


def test_a_tasks_error_never_carries_a_traceback() -> None:
    traced = TaskError("ValueError", "bad", "Traceback ...")
    failed = running().fail(TOKEN, traced, now=LATER, rand=0.5, final=True)
    assert failed.error == TaskError("ValueError", "bad")
    with pytest.raises(InvariantViolated):
        replace(failed, error=traced)


def test_assemble_builds_the_same_task_as_the_constructor_and_checks_it_alike() -> None:
    task = running(max_retries=3)
    values = {name: getattr(task, name) for name in Task.__dataclass_fields__}
    assert assemble(values) == Task(**values) == task
    with pytest.raises(InvariantViolated, match="retry_count"):
        assemble({**values, "retry_count": 4})
    with pytest.raises(KeyError):
        assemble({k: v for k, v in values.items() if k != "lease"})
