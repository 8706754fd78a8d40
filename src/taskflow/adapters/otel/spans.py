"""The spans of a task's journey, on the OpenTelemetry API (decision 28).

- ``submit`` (SERVER): the API's handling of ``POST /api/tasks`` or ``/batch``, continuing
  the producer's ``traceparent`` header when it sent one.
- ``dispatch`` (PRODUCER): a push of task ids to the queue, made within another span.
- ``execute`` (CONSUMER): one attempt in a worker, child of the span that submitted the task,
  read from the ``traceparent`` stored with it; each retry has its own.
- ``schedule`` (INTERNAL): a scheduler pass that enqueued periodic tasks, the root of their
  trace.

Only the W3C trace context is read and written, whatever ``OTEL_PROPAGATORS`` says: it is what
the task row keeps, and what the ``traceparent`` header of a producer carries.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.ports import Dispatch, TaskQueue

_W3C = TraceContextTextMapPropagator()
_VERSION = importlib.metadata.version("taskflow")
#: The span names, for whoever reads them (tests, docs).
SUBMIT, DISPATCH, EXECUTE, SCHEDULE = "submit", "dispatch", "execute", "schedule"


def provider_configured() -> bool:
    """True when this process has a tracer provider that records (set by the application,
    by ``opentelemetry-instrument``, or by OTEL_PYTHON_TRACER_PROVIDER)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def configure_sdk(environ: Mapping[str, str] | None = None) -> None:
    """Set the SDK's tracer provider up from the ``OTEL_*`` variables (TASKFLOW_TRACING=on
    with no provider of the application's): its resource from OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES (service.name "taskflow" by default), a batching processor per
    exporter named in OTEL_TRACES_EXPORTER (``otlp`` by default, ``console``, ``none``).
    ValueError names the variable at fault."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = os.environ if environ is None else environ
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "taskflow"}))
    provider = TracerProvider(resource=resource)
    for exporter in _exporters(env.get("OTEL_TRACES_EXPORTER") or "otlp"):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporters(names: str) -> list[Any]:
    found = []
    for name in (n.strip() for n in names.split(",")):
        if name in ("", "none"):
            continue
        points = importlib.metadata.entry_points(group="opentelemetry_traces_exporter", name=name)
        if not points:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: no span exporter named {name!r} is installed "
                "(console comes with the SDK; otlp with opentelemetry-exporter-otlp)"
            )
        found.append(next(iter(points)).load()())
    return found


def traceparent(span_context: trace.SpanContext) -> str:
    """The W3C traceparent of ``span_context``."""
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def parent_of(traceparent: str | None, tracestate: str | None = None) -> Context:
    """The context a traceparent (and tracestate) stand for; empty (a new trace) for None or a
    malformed one."""
    if traceparent is None:
        return Context()
    carrier = {"traceparent": traceparent}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    return _W3C.extract(carrier, Context())


class Tracing:
    """This process's span helpers; the ``TraceContext`` port of the domain's builders."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        provider = trace.get_tracer_provider() if provider is None else provider
        self._tracer = provider.get_tracer("taskflow", _VERSION)

    def current(self) -> str | None:
        """The active span of the caller as a traceparent: what a new task keeps."""
        context = trace.get_current_span().get_span_context()
        return traceparent(context) if context.is_valid else None

    def trace_id(self) -> str | None:
        """The trace id (32 hex digits) of the caller's active span, or None: what a log line
        written within a span should carry."""
        context = trace.get_current_span().get_span_context()
        return f"{context.trace_id:032x}" if context.is_valid else None

    def queue(self, inner: TaskQueue) -> TaskQueue:
        return TracedQueue(inner, self._tracer)

    @contextmanager
    def serving(
        self,
        method: str,
        route: str,
        *,
        traceparent: str | None,
        tracestate: str | None = None,
    ) -> Iterator[Served]:
        """A ``submit`` span around one request, the current span while it is served."""
        with self._tracer.start_as_current_span(
            SUBMIT,
            context=parent_of(traceparent, tracestate),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        ) as span:
            yield Served(span)

    @contextmanager
    def executing(self, task: Task, worker_id: str) -> Iterator[Executed]:
        """An ``execute`` span around one attempt of ``task`` (claimed: ``attempts`` counts
        it), the child of the span that submitted it."""
        with self._tracer.start_as_current_span(
            EXECUTE,
            context=parent_of(task.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "taskflow.task.id": str(task.id),
                "taskflow.task.type": task.type,
                "taskflow.queue": task.queue,
                "taskflow.attempt": task.attempts,
                "taskflow.worker.id": worker_id,
            },
            record_exception=False,  # an escaping exception is a bug of ours, not an attempt's
        ) as span:
            yield Executed(span, task)

    @contextmanager
    def scheduling(self) -> Iterator[Scheduled]:
        """A ``schedule`` span, current during one scheduler pass, the root of the traces of
        the tasks it enqueues. A pass that enqueued nothing (most of them, and every one that
        lost a tick to another process) is never ended, so never exported."""
        span = self._tracer.start_span(SCHEDULE, context=Context(), kind=SpanKind.INTERNAL)
        scheduled = Scheduled(span)
        try:
            with trace.use_span(span, end_on_exit=False):
                yield scheduled
        except Exception:
            span.end()
            raise
        if scheduled.kept:
            span.end()


class Served:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def answered(self, status_code: int) -> None:
        self._span.set_attribute("http.response.status_code", status_code)
        if status_code >= 500:  # a client's fault (4xx) is no error of the server's
            self._span.set_status(Status(StatusCode.ERROR))


class Executed:
    def __init__(self, span: trace.Span, task: Task) -> None:
        self._span = span
        self._before = task

    def ended(self, after: Task, failure: BaseException | None) -> None:
        """The attempt is over: ``after`` is the task as written (or as claimed, if nothing
        was), ``failure`` what the handler raised."""
        span = self._span
        span.set_attribute("taskflow.task.status", after.status.value)
        if failure is not None:
            span.record_exception(failure)
            span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
        elif _failed(self._before, after) and after.error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{after.error.type}: {after.error.message}"))


def _failed(before: Task, after: Task) -> bool:
    """The attempt failed: the task is FAILED now, or back to PENDING for a retry."""
    if after.status is TaskStatus.FAILED:
        return True
    return after.status is TaskStatus.PENDING and after.retry_count > before.retry_count


class Scheduled:
    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self.kept = False

    def enqueued(self, schedules: Sequence[str], task_ids: Sequence[UUID]) -> None:
        """The pass enqueued these tasks (of these schedules): the span is kept."""
        if not task_ids:
            return
        self._span.set_attribute("taskflow.schedules", sorted(set(schedules)))
        self._span.set_attribute("taskflow.task.count", len(task_ids))
        self.kept = True


class TracedQueue:
    """A ``TaskQueue`` whose pushes made within a span get a ``dispatch`` span of their own.

    A push with no span around it (the sweep's, a retry's outside any attempt) makes none:
    it would be the root of a trace of its own that says nothing.
    """

    def __init__(self, inner: TaskQueue, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        if not trace.get_current_span().is_recording():
            await self._inner.push(dispatches)
            return
        with self._tracer.start_as_current_span(
            DISPATCH, kind=SpanKind.PRODUCER, attributes=_dispatch_facts(dispatches)
        ):
            await self._inner.push(dispatches)

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        return await self._inner.pop(queues, limit=limit, timeout=timeout)  # no span: a wait

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _dispatch_facts(dispatches: Sequence[Dispatch]) -> dict[str, Any]:
    facts: dict[str, Any] = {"taskflow.task.count": len(dispatches)}
    queues = sorted({d.queue for d in dispatches})
    facts["taskflow.queue" if len(queues) == 1 else "taskflow.queues"] = (
        queues[0] if len(queues) == 1 else queues
    )
    if len(dispatches) == 1:
        facts["taskflow.task.id"] = str(dispatches[0].task_id)
    return facts
