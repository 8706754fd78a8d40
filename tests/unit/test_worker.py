"""The Worker on the in-memory store and queue, with a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.domain.attempts import AttemptEnd
from taskflow.domain.errors import UnstorableValue
from taskflow.domain.limits import MAX_RESULT_BYTES
from taskflow.domain.model import Progress, Task, TaskError, TaskStatus
from taskflow.domain.ports import CancelNotices
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import ExecutionService, SubmitTask, TaskService
from taskflow.entrypoints import logs
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.entrypoints.worker import log as worker_log
from taskflow.handlers import Fail, Retry, TaskContext
from taskflow.registry import Registry
from tests.clocks import FakeClock

PENDING, PROCESSING, SUCCESS, FAILED = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCESS,
    TaskStatus.FAILED,
)
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base=2.0, max=8.0)  # with rand = 1.0 the first retry waits exactly 2 s
LEASE_SECONDS = 30
BOUND = 10.0  # generous upper bound on every wait; never reached unless something is wrong
ORDER = {"order_id": "o-1", "qty": 3}


class Order(msgspec.Struct):
    order_id: str
    qty: int


@dataclass
class Probe:
    """What the test handlers saw; `release` lets the blocking handler finish."""

    payloads: list[Any] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    contexts: list[tuple[UUID, int, UUID, UUID | None, str, str]] = field(default_factory=list)
    cancelled: list[UUID] = field(default_factory=list)
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)  # a handler was cancelled
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ordered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def build_registry(probe: Probe, repo: InMemoryTaskRepository) -> Registry:
    tasks = Registry()

    @tasks.task("t.order")
    async def order(payload: Order, ctx: TaskContext) -> Order:
        probe.payloads.append(payload)
        probe.ordered.set()
        return Order(order_id=payload.order_id, qty=payload.qty * 2)

    @tasks.task("t.threaded")
    def threaded(payload: dict[str, Any], ctx: TaskContext) -> dict[str, str]:
        probe.threads.append(threading.current_thread())
        ctx.progress(0.25, "from a thread")
        return {"ran": "in a thread"}

    @tasks.task("t.raise")
    async def raise_(payload: dict[str, Any], ctx: TaskContext) -> None:
        if payload["kind"] == "deep":
            _down(60)
        raise {"fail": Fail("x"), "retry": Retry(after=7)}.get(payload["kind"], KeyError("k"))

    @tasks.task("t.block")
    async def block(payload: dict[str, Any], ctx: TaskContext) -> str:
        probe.started.set()
        try:
            await probe.release.wait()
        except asyncio.CancelledError:
            probe.cancelled.append(ctx.task_id)
            probe.interrupted.set()
            raise
        return "released"

    @tasks.task("t.context")
    async def context(payload: dict[str, Any], ctx: TaskContext) -> int:
        stored = await repo.get(ctx.task_id)
        lease = stored.lease.token if stored.lease else None
        probe.contexts.append((ctx.task_id, ctx.attempt, ctx.token, lease, ctx.type, ctx.queue))
        await ctx.progress(0.5, "half")
        if ctx.attempt == 1:
            raise Retry(after=0)
        return ctx.attempt

    return tasks


class UnstorableResults(InMemoryTaskRepository):
    """A store that cannot keep any result, as the SQL store cannot keep U+0000."""

    async def save(self, task: Task, *, closing: AttemptEnd | None = None) -> None:
        if task.result is not None:
            raise UnstorableValue("result.rows[1] holds U+0000", field="result.rows[1]")
        await super().save(task, closing=closing)


class Env:
    def __init__(self, store: type[InMemoryTaskRepository] = InMemoryTaskRepository) -> None:
        self.clock = FakeClock(START)
        self.repo = store(self.clock)
        self.queue = InMemoryTaskQueue(self.clock)
        self.probe = Probe()
        self.registry = build_registry(self.probe, self.repo)
        self.tasks = self.task_service()

    def task_service(self, cancel_notices: CancelNotices | None = None) -> TaskService:
        return TaskService(
            repository=self.repo,
            queue=self.queue,
            types=self.registry,
            clock=self.clock,
            new_id=uuid.uuid4,
            retry_policy=POLICY,
            cancel_notices=cancel_notices,
        )

    def execution(self, worker_id: str = "w1") -> ExecutionService:
        return ExecutionService(
            repository=self.repo,
            queue=self.queue,
            clock=self.clock,
            rand=lambda: 1.0,
            worker_id=worker_id,
            lease_seconds=LEASE_SECONDS,
        )

    def worker(
        self, registry: Registry | None = None, worker_id: str = "w1", **opts: Any
    ) -> Worker:
        opts = {"heartbeat_seconds": 3600.0, "sweep_seconds": 3600.0, "poll_seconds": 0.05, **opts}
        registry = self.registry if registry is None else registry
        return Worker(self.execution(worker_id), registry, WorkerOptions(**opts))

    async def submit(self, type: str, payload: dict[str, Any] | None = None, **kw: Any) -> Task:
        return await self.tasks.submit(SubmitTask(type=type, payload=payload or {}, **kw))

    async def get(self, task: Task) -> Task:
        return await self.repo.get(task.id)


@pytest.fixture
def env() -> Env:
    return Env()


@contextlib.contextmanager
def heard(message: str) -> Iterator[asyncio.Event]:
    """An event set when the worker logs ``message`` (at a level its logger lets through)."""
    seen = asyncio.Event()

    class Listener(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == message:
                seen.set()

    listener = Listener()
    worker_log.addHandler(listener)
    try:
        yield seen
    finally:
        worker_log.removeHandler(listener)


async def until(event: asyncio.Event) -> None:
    async with asyncio.timeout(BOUND):
        await event.wait()


async def run_one(worker: Worker) -> None:
    """Claim exactly one task and wait until its attempt is settled."""
    assert await worker.run_once() == 1
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()


@contextlib.asynccontextmanager
async def serving(worker: Worker, force: asyncio.Event | None = None) -> AsyncIterator[Any]:
    """run_forever in the background; leaving the block sets `stop` and waits for the end."""
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run_forever(stop, force))
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await runner


def facts(task: Task) -> tuple[TaskStatus, int, int, str | None]:
    """Status, attempts, retry_count and error type: what an attempt's outcome changes."""
    return task.status, task.attempts, task.retry_count, task.error.type if task.error else None


def assert_released(task: Task) -> None:
    assert facts(task) == (PENDING, 1, 0, None)
    assert task.lease is None
    assert task.run_at == START


# -- outcomes ---------------------------------------------------------------------------------


async def test_async_handler_gets_its_struct_and_its_struct_result_is_stored(env: Env) -> None:
    task = await env.submit("t.order", ORDER)

    await run_one(env.worker())

    assert env.probe.payloads == [Order(order_id="o-1", qty=3)]
    done = await env.get(task)
    assert facts(done) == (SUCCESS, 1, 0, None)
    assert done.result == {"order_id": "o-1", "qty": 6}
    assert type(done.result) is dict
    assert (done.finished_at, done.lease) == (START, None)


async def test_plain_def_handler_runs_in_a_thread_and_reports_progress(env: Env) -> None:
    task = await env.submit("t.threaded")

    await run_one(env.worker())

    [thread] = env.probe.threads
    assert thread is not threading.main_thread()
    assert thread is not threading.current_thread()
    done = await env.get(task)
    assert (done.status, done.result) == (SUCCESS, {"ran": "in a thread"})
    assert done.progress == Progress(0.25, "from a thread")


@pytest.mark.parametrize(
    ("kind", "status", "retries", "run_at", "error"),
    [
        ("fail", FAILED, 0, START, TaskError("Fail", "x")),
        ("retry", PENDING, 1, START + timedelta(seconds=7), TaskError("Retry", "retry requested")),
    ],
)
async def test_fail_ends_at_once_and_retry_waits_the_given_seconds(
    env: Env, kind: str, status: TaskStatus, retries: int, run_at: datetime, error: TaskError
) -> None:
    task = await env.submit("t.raise", {"kind": kind}, max_retries=3)

    await run_one(env.worker())

    after = await env.get(task)
    expected = (status, retries, run_at, error)
    assert (after.status, after.retry_count, after.run_at, after.error) == expected
    assert after.lease is None
    assert len(env.queue) == retries  # only a retry goes back to the queue


async def test_exception_retries_with_backoff_until_retries_run_out(env: Env) -> None:
    task = await env.submit("t.raise", {"kind": "boom"}, max_retries=1)
    worker = env.worker()

    await run_one(worker)
    again = await env.get(task)
    assert facts(again) == (PENDING, 1, 1, "KeyError")
    assert again.run_at == START + timedelta(seconds=2)
    assert await worker.run_once() == 0  # backing off: not due yet

    env.clock.advance(2)
    await run_one(worker)
    failed = await env.get(task)
    assert facts(failed) == (FAILED, 2, 1, "KeyError")
    assert failed.finished_at == START + timedelta(seconds=2)


async def test_attempt_running_past_timeout_seconds_fails_with_timeout_error(env: Env) -> None:
    task = await env.submit("t.block", timeout_seconds=0.01, max_retries=0)

    await run_one(env.worker())

    assert facts(await env.get(task)) == (FAILED, 1, 0, "TimeoutError")
    assert env.probe.cancelled == [task.id]


async def test_unknown_task_type_is_a_failed_attempt(env: Env) -> None:
    task = await env.submit("t.order", ORDER, max_retries=1)

    await run_one(env.worker(registry=Registry()))

    assert facts(await env.get(task)) == (PENDING, 1, 1, "UnknownTaskType")
    assert env.probe.payloads == []


async def test_stored_payload_off_its_schema_fails_without_retry(env: Env) -> None:
    task = await env.submit("t.order", ORDER, max_retries=3)
    stored = await env.get(task)
    await env.repo.save(replace(stored, payload={"order_id": "o-1"}, version=stored.version + 1))

    await run_one(env.worker())

    assert facts(await env.get(task)) == (FAILED, 1, 0, "InvalidPayload")
    assert env.probe.payloads == []


async def test_a_result_over_its_limit_fails_the_attempt_saying_so(env: Env) -> None:
    async def oversized(payload: dict[str, Any], ctx: TaskContext) -> str:
        return "x" * MAX_RESULT_BYTES  # and its two quotes

    env.registry.task("t.oversized")(oversized)
    task = await env.submit("t.oversized", {}, max_retries=0)

    await run_one(env.worker())

    done = await env.get(task)
    assert facts(done) == (FAILED, 1, 0, "ResultTooLarge")
    assert done.error is not None
    assert f"the limit is {MAX_RESULT_BYTES} bytes" in done.error.message
    assert done.result is None


async def test_a_result_the_store_cannot_keep_fails_the_attempt_naming_where() -> None:
    env = Env(UnstorableResults)
    task = await env.submit("t.order", ORDER, max_retries=0)

    await run_one(env.worker())

    done = await env.get(task)
    assert facts(done) == (FAILED, 1, 0, "UnstorableResult")
    assert done.error is not None
    assert "result.rows[1]" in done.error.message
    assert done.result is None
    [attempt] = await env.repo.attempts(task.id)
    assert attempt.error == done.error


async def test_context_tells_the_attempt_and_its_lease_and_progress_is_stored(env: Env) -> None:
    task = await env.submit("t.context")
    worker = env.worker()

    await run_one(worker)
    assert (await env.get(task)).status is PENDING
    await run_one(worker)

    first, second = env.probe.contexts
    assert [c[:2] for c in (first, second)] == [(task.id, 1), (task.id, 2)]
    assert (first[2], second[2]) == (first[3], second[3])  # ctx.token is the lease token
    assert first[2] != second[2]
    assert second[4:] == ("t.context", "default")
    done = await env.get(task)
    assert (done.status, done.result) == (SUCCESS, 2)
    assert done.progress == Progress(0.5, "half")


async def test_run_once_claims_no_more_than_the_free_slots(env: Env) -> None:
    tasks = [await env.submit("t.block") for _ in range(5)]
    worker = env.worker(concurrency=2)

    assert await worker.run_once() == 2
    assert worker.free_slots == 0
    assert await worker.run_once() == 0
    running = {t.id for t in tasks if (await env.get(t)).status is PROCESSING}
    assert {t.id for t in worker.running} == running
    assert len(running) == 2

    env.probe.release.set()
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()
    assert sorted([(await env.get(t)).status for t in tasks]) == [PENDING] * 3 + [SUCCESS] * 2
    assert worker.free_slots == 2


class GatedStore(InMemoryTaskRepository):
    """A store whose writes of a SUCCESS wait until the test opens the gate."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.gate = asyncio.Event()
        self.waiting = 0
        self._arrived = asyncio.Condition()

    async def save(self, task: Task, *, closing: AttemptEnd | None = None) -> None:
        if task.status is SUCCESS:
            async with self._arrived:
                self.waiting += 1
                self._arrived.notify_all()
            await self.gate.wait()
        await super().save(task, closing=closing)

    async def until_waiting(self, count: int) -> None:
        async with asyncio.timeout(BOUND), self._arrived:
            await self._arrived.wait_for(lambda: self.waiting >= count)


async def test_a_finished_handler_frees_its_slot_while_its_outcome_is_written() -> None:
    env = Env(GatedStore)
    store = env.repo
    assert isinstance(store, GatedStore)
    tasks = [await env.submit("t.order", ORDER) for _ in range(7)]
    worker = env.worker(concurrency=2, prefetch=0)  # waiting writes: at most one claim's worth

    assert await worker.run_once() == 2
    await store.until_waiting(2)
    # Both handlers are done and their writes wait: the next claim need not wait for them.
    assert worker.free_slots == 2
    assert await worker.run_once() == 2
    await store.until_waiting(4)
    # But no more outcomes wait to be written than one claim may bring.
    assert worker.free_slots == 0
    assert await worker.run_once() == 0
    assert len(worker.running) == 4

    store.gate.set()
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()
    statuses = sorted([(await env.get(t)).status for t in tasks])
    assert statuses == [PENDING] * 3 + [SUCCESS] * 4
    assert worker.free_slots == 2


# -- run_forever and shutdown -----------------------------------------------------------------


async def test_run_forever_refills_the_queue_from_the_store_at_start(env: Env) -> None:
    task = Task.new(id=uuid.uuid4(), type="t.order", payload=ORDER, now=START)
    await env.repo.add(task)  # in the store only, as after a restart of an in-process queue
    assert len(env.queue) == 0

    async with serving(env.worker()):
        await until(env.probe.ordered)

    assert (await env.get(task)).status is SUCCESS


async def test_shutdown_hands_back_an_attempt_unfinished_after_grace(env: Env) -> None:
    task = await env.submit("t.block")

    async with serving(env.worker(shutdown_grace_seconds=0.01)):
        await until(env.probe.started)

    assert env.probe.cancelled == [task.id]
    assert_released(await env.get(task))
    assert await env.queue.pop(["default"], limit=5, timeout=0) == [task.id]


async def test_shutdown_lets_a_handler_finish_within_the_grace_period(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    task = await env.submit("t.block")
    caplog.set_level(logging.INFO, logger=worker_log.name)

    with heard("finishing running tasks") as shutting_down:
        async with serving(env.worker(shutdown_grace_seconds=BOUND)) as stop:
            await until(env.probe.started)
            stop.set()
            await until(shutting_down)
            # A worker that did not wait would cancel the handler within these turns of the
            # loop; one that waits passes however many there are.
            for _ in range(20):
                await asyncio.sleep(0)
            assert env.probe.cancelled == []
            env.probe.release.set()

    done = await env.get(task)
    assert (done.status, done.result) == (SUCCESS, "released")
    assert env.probe.cancelled == []


async def test_force_cancels_at_once_and_hands_the_attempt_back(env: Env) -> None:
    task = await env.submit("t.block")
    force = asyncio.Event()

    async with serving(env.worker(shutdown_grace_seconds=3600.0), force) as stop:
        await until(env.probe.started)
        stop.set()
        force.set()

    assert env.probe.cancelled == [task.id]
    assert_released(await env.get(task))


async def test_force_does_not_abort_the_write_of_a_finished_attempt() -> None:
    env = Env(GatedStore)
    store = env.repo
    assert isinstance(store, GatedStore)
    task = await env.submit("t.order", ORDER)
    blocked = await env.submit("t.block")
    force = asyncio.Event()

    async with serving(env.worker(), force) as stop:
        await store.until_waiting(1)  # the handler is done; its outcome's write is held
        await until(env.probe.started)
        stop.set()
        force.set()
        # The forced shutdown cancels what runs, in one go: once the blocked handler has
        # seen its cancellation, a cancellation of the held write would have been delivered.
        await until(env.probe.interrupted)
        store.gate.set()

    done = await env.get(task)
    assert (done.status, done.lease) == (SUCCESS, None)
    assert env.probe.cancelled == [blocked.id]
    assert_released(await env.get(blocked))


# -- leases -----------------------------------------------------------------------------------


async def test_heartbeat_abandons_an_attempt_whose_lease_was_taken_over(env: Env) -> None:
    task = await env.submit("t.block")
    worker = env.worker(worker_id="a")
    assert await worker.run_once() == 1
    await until(env.probe.started)

    other = env.execution("b")
    env.clock.advance(LEASE_SECONDS + 1)
    [lost] = await other.reap()
    assert facts(lost.task) == (PENDING, 1, 1, "WorkerLost")
    assert lost.worker_id == worker.id
    env.clock.advance(2)  # the WorkerLost retry's backoff
    [newer] = await other.claim(["default"], limit=1, timeout=0)
    assert newer.lease is not None
    assert newer.lease.worker_id == "b"

    await worker.heartbeat()
    async with asyncio.timeout(BOUND):
        await worker.wait_idle()

    assert env.probe.cancelled == [task.id]
    assert worker.running == []
    assert await env.get(task) == newer  # the abandoned attempt wrote nothing


async def test_sweep_turns_an_expired_lease_into_a_worker_lost_failure(env: Env) -> None:
    task = await env.submit("t.order", ORDER, max_retries=0)
    [claimed] = await env.execution("gone").claim(["default"], limit=1, timeout=0)
    assert claimed.id == task.id
    worker = env.worker()

    await worker.sweep()
    assert (await env.get(task)).status is PROCESSING  # the lease still runs

    env.clock.advance(LEASE_SECONDS + 1)
    await worker.sweep()
    failed = await env.get(task)
    assert facts(failed) == (FAILED, 1, 0, "WorkerLost")
    assert (failed.finished_at, failed.lease) == (env.clock.now(), None)


async def test_sweep_forgets_idempotency_keys_older_than_a_day(env: Env) -> None:
    command = SubmitTask(type="t.order", payload=ORDER)
    [first], _ = await env.tasks.submit_idempotent([command], key="k", request_hash="h")
    worker = env.worker()

    env.clock.advance(24 * 3600)
    await worker.sweep()
    assert (await env.tasks.submit_idempotent([command], key="k", request_hash="h"))[1]

    env.clock.advance(1)
    await worker.sweep()
    [second], replayed = await env.tasks.submit_idempotent([command], key="k", request_hash="h")
    assert not replayed
    assert second.id != first.id


async def test_a_handlers_traceback_is_logged_and_kept_with_its_attempt(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    task = await env.submit("t.raise", {"kind": "boom"}, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="taskflow.worker"):
        await run_one(env.worker())

    [attempt] = await env.tasks.attempts(task.id)
    assert attempt.error is not None
    trace = attempt.error.traceback
    assert trace is not None
    assert "in raise_" in trace
    assert trace.rstrip().endswith("KeyError: 'k'")
    failed = await env.get(task)
    assert failed.error is not None
    assert failed.error.traceback is None
    [record] = [r for r in caplog.records if r.getMessage() == "task failed"]
    assert record.exception == trace  # type: ignore[attr-defined]  # short: kept whole


async def test_a_long_traceback_is_logged_by_its_tail_within_one_pipe_write(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    task = await env.submit("t.raise", {"kind": "deep"}, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="taskflow.worker"):
        await run_one(env.worker())

    [attempt] = await env.tasks.attempts(task.id)
    assert attempt.error is not None
    assert attempt.error.traceback is not None
    [record] = [r for r in caplog.records if r.getMessage() == "task failed"]
    logged: str = record.exception  # type: ignore[attr-defined]
    assert len(logged.encode()) <= logs.LOG_TRACEBACK_BYTES < len(attempt.error.traceback)
    assert logged.startswith("... (the start of this traceback was cut)")
    assert logged.rstrip().endswith("LookupError: deep")


async def test_a_failure_not_raised_by_the_handler_keeps_no_traceback(env: Env) -> None:
    task = await env.submit("t.order", {"order_id": "a", "qty": 1})
    await run_one(env.worker(registry=Registry()))  # this worker knows no type at all
    [attempt] = await env.tasks.attempts(task.id)
    assert attempt.error is not None
    assert attempt.error.type == "UnknownTaskType"
    assert attempt.error.traceback is None


def _down(depth: int) -> None:
    """Raise ``depth`` frames down, through two functions in turn (Python folds a frame that
    repeats itself into one line)."""
    if depth == 0:
        raise LookupError("deep")
    _across(depth - 1)


def _across(depth: int) -> None:
    _down(depth)
