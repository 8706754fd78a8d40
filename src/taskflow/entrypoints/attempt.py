"""One attempt: call the handler, keep its traceback if it raises, write its outcome.

The worker decides when attempts start and keeps their slots; an ``AttemptRunner`` carries one
attempt from the handler's call to its outcome stored (or abandoned with its lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from taskflow.adapters.prometheus import Metrics
from taskflow.domain.errors import (
    InvalidPayload,
    InvalidTransition,
    LeaseLost,
    StoreUnavailable,
    UnstorableValue,
)
from taskflow.domain.limits import result_size_problem
from taskflow.domain.model import UNKNOWN_TASK_TYPE, Progress, Task, TaskError, TaskStatus
from taskflow.domain.services import ExecutionService
from taskflow.entrypoints.logs import (
    EventLog,
    error_facts,
    retry_facts,
    task_facts,
    traceback_facts,
)
from taskflow.entrypoints.sweeper import OUTAGES
from taskflow.handlers import Fail, Retry, TaskContext
from taskflow.registry import Registry, TaskDefinition

if TYPE_CHECKING:
    from taskflow.adapters.otel.spans import Tracing

log = logging.getLogger("taskflow.worker")
_encode = msgspec.json.Encoder().encode
events = EventLog(log)


@dataclass(slots=True)
class Run:
    """One attempt as the worker follows it."""

    task: Task
    job: asyncio.Task[None] | None = None
    settling: bool = False  # the handler is done; its outcome is being written
    lost: bool = False  # the lease is gone; nothing of this attempt may be written
    cancel_requested: bool = False  # the handler was told to stop: the attempt ends CANCELLED
    context: TaskContext | None = None  # once the handler is about to be called
    threaded: bool = False  # a plain `def` handler, which can only be asked to stop
    failure: BaseException | None = None  # what the handler raised (its attempt's span shows it)
    failure_trace: str | None = None  # the traceback of what the handler raised, to log
    hand_back: bool = False  # claimed ahead and never started: release it (shutdown)
    started: float = field(default_factory=time.monotonic)


class AttemptRunner:
    def __init__(
        self,
        service: ExecutionService,
        registry: Registry,
        executor: Executor,
        on_settling: Callable[[Run], None],
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._service = service
        self._metrics = metrics or Metrics()
        self._registry = registry
        self._executor = executor
        self._on_settling = on_settling
        self._tracing = tracing

    async def run(self, run: Run) -> None:
        """Run the handler and write the outcome, in an ``execute`` span when tracing is on."""
        if self._tracing is None or run.cancel_requested or run.hand_back:
            await self._run(run)
            return
        with self._tracing.executing(run.task, self._service.worker_id) as span:
            await self._run(run)
            span.ended(run.task, run.failure)

    async def _run(self, run: Run) -> None:
        """Run the handler and write the outcome.

        A cancellation of the job hands the attempt back (shutdown), unless the task's cancel
        was requested (CANCELLED) or its lease is gone (nothing written). A run whose cancel
        was requested or that is to be handed back before it started calls no handler.
        """
        if run.cancel_requested:
            await self._settle(run, self._acknowledge_cancel)
            return
        if run.hand_back:
            await self._settle(run, self._service.release, released=True)
            return
        self._metrics.started(run.task)
        try:
            result = await self._invoke(run)
        except asyncio.CancelledError:
            if run.lost:
                return  # the lease is gone: nothing of this attempt may be written
            if run.cancel_requested:
                await asyncio.shield(self._settle(run, self._acknowledge_cancel))
            else:
                # Shutdown: hand the attempt back without counting it (a release).
                await asyncio.shield(self._settle(run, self._service.release, released=True))
            return
        except Exception as exc:
            if run.cancel_requested:  # told to stop, it raised: the cancel is what happened
                await self._settle(run, self._acknowledge_cancel)
            else:
                await self._settle_exception(run, exc)
        else:
            if run.cancel_requested:  # told to stop, it returned early: not a success
                await self._settle(run, self._acknowledge_cancel)
            else:
                await self._settle(run, functools.partial(self._succeed, result=result))

    async def outlast(self, runs: Sequence[Run], *, bound: float) -> bool:
        """Wait for ``runs``, cancelled at shutdown, to end. A handler still running ``bound``
        seconds later ignores its cancel: its attempt is handed back all the same, and the
        handler left to the process's exit. Returns whether any was."""
        jobs = [run.job for run in runs if run.job is not None]
        if jobs:
            await asyncio.wait(jobs, timeout=bound)
        stubborn: list[Run] = []
        ended: list[asyncio.Task[None]] = []  # or writing their outcome, bounded by the lease
        for run in runs:
            if run.job is not None:
                if run.job.done() or run.settling:
                    ended.append(run.job)
                else:
                    stubborn.append(run)
        for run in stubborn:
            log.warning("handler ignored its cancel, handed back", extra=task_facts(run.task))
        releases = [self._settle(run, self._service.release, released=True) for run in stubborn]
        await asyncio.gather(*releases)
        await asyncio.gather(*ended, return_exceptions=True)
        return bool(stubborn)

    def cancel(self, run: Run) -> None:
        """A cancel of the run's task was requested: stop its handler, then record CANCELLED.

        An ``async def`` handler's job is cancelled; a plain ``def`` one sees ``ctx.cancelled``
        and ends when it returns. A handler that is already done keeps its outcome.
        """
        if run.cancel_requested or run.settling or run.lost or run.job is None:
            return
        run.cancel_requested = True
        if run.context is not None:
            run.context.mark_cancelled()
        if not run.threaded:
            run.job.cancel()
        log.info("cancel requested, stopping the handler", extra=task_facts(run.task))

    async def _acknowledge_cancel(self, task: Task) -> Task:
        try:
            return await self._service.acknowledge_cancel(task)
        except InvalidTransition:
            # No cancel is stored for this attempt (a notice about an earlier one, say): the
            # handler was stopped all the same, so hand the attempt back uncounted.
            return await self._service.release(task)

    async def _settle_exception(self, run: Run, exc: Exception) -> None:
        retry_after = exc.after if isinstance(exc, Retry) else None
        final = isinstance(exc, Fail) or (isinstance(exc, _Unrunnable) and exc.final)
        await self._settle_failure(run, exc, retry_after=retry_after, final=final)

    async def _invoke(self, run: Run) -> Any:
        task = run.task
        definition = self._registry.get(task.type)
        if definition is None:
            raise _Unrunnable(UNKNOWN_TASK_TYPE, f"this worker has no handler for {task.type!r}")
        try:
            payload = definition.decode(task.payload)
        except InvalidPayload as exc:
            raise _Unrunnable("InvalidPayload", exc.message, final=True) from None
        assert task.lease is not None
        ctx = TaskContext(
            task_id=task.id,
            type=task.type,
            queue=task.queue,
            attempt=task.attempts,
            token=task.lease.token,
            sink=functools.partial(self._progress, run),
            loop=asyncio.get_running_loop(),
        )
        run.context, run.threaded = ctx, not definition.is_async
        if task.timeout_seconds is None:  # a timeout context costs as much as a no-op handler
            result = await self._call(definition, payload, ctx)
        else:
            async with asyncio.timeout(task.timeout_seconds):
                result = await self._call(definition, payload, ctx)
        return msgspec.to_builtins(result)

    async def _succeed(self, task: Task, result: Any) -> Task:
        too_large = result_size_problem(len(_encode(result)))
        if too_large is not None:  # kept whole, it would weigh on every read of the task
            return await self._service.fail(task, TaskError("ResultTooLarge", too_large))
        try:
            return await self._service.succeed(task, result)
        except UnstorableValue as exc:  # the store cannot keep the result: the attempt fails
            return await self._service.fail(task, TaskError("UnstorableResult", exc.message))

    async def _call(self, definition: TaskDefinition, payload: Any, ctx: TaskContext) -> Any:
        if definition.is_async:
            return await definition.handler(payload, ctx)
        loop = asyncio.get_running_loop()
        call = functools.partial(definition.handler, payload, ctx)
        if self._tracing is not None:  # the handler's own spans are children of its attempt's
            call = functools.partial(contextvars.copy_context().run, call)
        return await loop.run_in_executor(self._executor, call)

    async def _progress(self, run: Run, progress: Progress) -> None:
        if run.lost or run.settling:
            return
        with contextlib.suppress(LeaseLost, *OUTAGES):
            run.task = await self._service.report_progress(run.task, progress)

    async def _settle_failure(
        self,
        run: Run,
        exc: Exception,
        *,
        retry_after: float | None = None,
        final: bool = False,
    ) -> None:
        """Record the handler's exception as a failed attempt, its traceback with it."""
        if isinstance(exc, _Unrunnable):  # not the handler's doing: no traceback to keep
            error, trace = exc.error, None
        else:
            error, trace = _task_error(exc), "".join(traceback.format_exception(exc))
            run.failure, run.failure_trace = exc, trace
        await self._settle(
            run,
            functools.partial(
                self._service.fail,
                error=error,
                retry_after=retry_after,
                final=final,
                traceback=trace,
            ),
        )

    async def _settle(
        self, run: Run, write: Callable[[Task], Awaitable[Task]], *, released: bool = False
    ) -> None:
        """Write the attempt's outcome, waiting out a store outage while the lease lasts."""
        run.settling = True
        self._on_settling(run)
        backoff = Backoff()
        deadline = time.monotonic() + self._service.lease_seconds
        while True:
            try:
                run.task = await write(run.task)
            except LeaseLost:
                log.warning("outcome discarded: lease lost", extra=task_facts(run.task))
                return
            except StoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    log.error(
                        "outcome not recorded", extra={**task_facts(run.task), "error": str(exc)}
                    )
                    return
                await asyncio.sleep(backoff.next())
                continue
            except Exception:
                # A bug, or a value the store refuses: the lease will lapse and the reaper
                # count the attempt as lost, so the task is retried, not forgotten.
                log.exception("outcome not recorded", extra=task_facts(run.task))
                return
            if not released:
                ran = None if run.context is None else time.monotonic() - run.started
                self._metrics.ended(run.task, ran)
            _log_outcome(run, released=released, worker_id=self._service.worker_id)
            return


class _Unrunnable(Exception):
    def __init__(self, kind: str, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.error = TaskError(kind, message)
        self.final = final


class Backoff:
    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self._first


def _task_error(exc: BaseException) -> TaskError:
    if isinstance(exc, TimeoutError) and not str(exc):
        return TaskError("TimeoutError", "the attempt ran past its timeout_seconds")
    return TaskError(type(exc).__name__, str(exc) or type(exc).__name__)


def _log_outcome(run: Run, *, released: bool, worker_id: str) -> None:
    task = run.task
    if task.status is TaskStatus.SUCCESS and not log.isEnabledFor(logging.INFO):
        return
    facts = {
        **task_facts(task, worker_id=worker_id),
        "duration_ms": round((time.monotonic() - run.started) * 1000, 3),
    }
    if task.status is TaskStatus.SUCCESS:
        events.info("task succeeded", facts)
    elif task.status is TaskStatus.FAILED:
        failed = {**facts, "error": error_facts(task), **traceback_facts(run.failure_trace)}
        events.warning("task failed", failed)
    elif task.status is TaskStatus.CANCELLED:
        events.info("task cancelled", facts)
    elif released:
        events.info("task handed back", facts)
    else:
        events.warning(
            "retry scheduled",
            {
                **facts,
                **retry_facts(task),
                "error": error_facts(task),
                **traceback_facts(run.failure_trace),
            },
        )
