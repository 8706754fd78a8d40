"""The span helpers of decision 28, on the SDK's in-memory exporter.

Each test has a tracer provider of its own: the process-wide one is never set here, since
OpenTelemetry lets a process set it once only.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from dependency_injector import providers
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.adapters.otel import installed, open_tracing
from taskflow.adapters.otel.spans import (
    TracedQueue,
    Tracing,
    configure_sdk,
    parent_of,
    traceparent,
)
from taskflow.config import ConfigError, Settings
from taskflow.containers import build_container
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.model import Lease, Task, TaskError
from taskflow.domain.ports import Dispatch
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PRODUCER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = Tracing(self.provider)
        self.tracer = self.provider.get_tracer("test")

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans: Sequence[ReadableSpan] = self.exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.finished(name)
        return span


@pytest.fixture
def spans() -> Spans:
    return Spans()


def claimed(traceparent: str | None = PRODUCER, attempt: int = 1) -> Task:
    task = Task.new(
        id=uuid.uuid4(),
        type="mail.send",
        payload={},
        now=NOW,
        queue="mail",
        traceparent=traceparent,
    )
    for _ in range(attempt):
        task = task.claim(Lease(uuid.uuid4(), "w", NOW), now=NOW)
        if task.attempts < attempt:
            task = task.release(task.lease.token, now=NOW)  # type: ignore[union-attr]
    return task


class FakeQueue:
    def __init__(self, fail: bool = False) -> None:
        self.pushed: list[Dispatch] = []
        self.fail = fail

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        if self.fail:
            raise QueueUnavailable("redis is down")
        self.pushed.extend(dispatches)


def test_current_is_none_outside_any_span_and_the_spans_traceparent_inside(
    spans: Spans,
) -> None:
    assert spans.tracing.current() is None
    with spans.tracer.start_as_current_span("outer") as span:
        context = span.get_span_context()
        assert spans.tracing.current() == (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        )
        assert spans.tracing.current() == traceparent(context)


def test_the_trace_id_for_log_lines_is_the_active_spans(spans: Spans) -> None:
    assert spans.tracing.trace_id() is None
    with spans.tracer.start_as_current_span("outer") as span:
        assert spans.tracing.trace_id() == f"{span.get_span_context().trace_id:032x}"


def test_a_stored_traceparent_reads_back_as_the_same_span_context() -> None:
    from opentelemetry import trace

    context = trace.get_current_span(parent_of(PRODUCER)).get_span_context()
    assert traceparent(context) == PRODUCER
    assert context.is_remote


@pytest.mark.parametrize("bad", [None, "", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_no_or_a_malformed_traceparent_starts_a_new_trace(bad: str | None) -> None:
    from opentelemetry import trace

    assert not trace.get_current_span(parent_of(bad)).get_span_context().is_valid


def test_execute_is_a_child_of_the_stored_span_with_the_attempts_facts(spans: Spans) -> None:
    task = claimed(attempt=2)
    with spans.tracing.executing(task, "w-1") as executed:
        inside = spans.tracing.current()
        executed.ended(task, None)
    span = spans.one("execute")
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert (span.context.trace_id, span.parent.span_id) == (
        int(PRODUCER.split("-")[1], 16),
        int(PRODUCER.split("-")[2], 16),
    )
    assert inside == traceparent(span.context)  # the handler's own spans are its children
    assert dict(span.attributes or {}) == {
        "taskflow.task.id": str(task.id),
        "taskflow.task.type": "mail.send",
        "taskflow.queue": "mail",
        "taskflow.attempt": 2,
        "taskflow.worker.id": "w-1",
        "taskflow.task.status": "PROCESSING",
    }
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_attempt_has_error_status_and_the_exception_event(spans: Spans) -> None:
    task = claimed()
    assert task.lease is not None
    error = ValueError("card declined")
    after = task.fail(task.lease.token, TaskError("ValueError", "card declined"), now=NOW, rand=0)
    with spans.tracing.executing(task, "w-1") as executed:
        executed.ended(after, error)
    span = spans.one("execute")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: card declined"
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert (span.attributes or {})["taskflow.task.status"] == "PENDING"


def test_an_attempt_that_failed_without_raising_is_an_error_too(spans: Spans) -> None:
    task = claimed()
    assert task.lease is not None
    unknown = TaskError("UnknownTaskType", "no handler for 'mail.send'")
    after = task.fail(task.lease.token, unknown, now=NOW, rand=0, final=True)
    with spans.tracing.executing(task, "w-1") as executed:
        executed.ended(after, None)
    span = spans.one("execute")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "UnknownTaskType: no handler for 'mail.send'"
    assert not span.events


def test_an_attempt_of_a_task_without_a_trace_starts_one(spans: Spans) -> None:
    with spans.tracing.executing(claimed(traceparent=None), "w-1") as executed:
        executed.ended(claimed(traceparent=None), None)
    assert spans.one("execute").parent is None


async def test_a_push_within_a_span_is_a_dispatch_span_under_it(spans: Spans) -> None:
    inner = FakeQueue()
    queue = spans.tracing.queue(inner)  # type: ignore[arg-type]
    task_id = uuid.uuid4()
    with spans.tracer.start_as_current_span("submit") as parent:
        await queue.push([Dispatch(task_id, "mail", 5, NOW)])
    span = spans.one("dispatch")
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert dict(span.attributes or {}) == {
        "taskflow.task.count": 1,
        "taskflow.queue": "mail",
        "taskflow.task.id": str(task_id),
    }
    assert [d.task_id for d in inner.pushed] == [task_id]


async def test_a_push_outside_any_span_makes_none(spans: Spans) -> None:
    inner = FakeQueue()
    queue = spans.tracing.queue(inner)  # type: ignore[arg-type]
    await queue.push([Dispatch(uuid.uuid4(), "a", 5, NOW), Dispatch(uuid.uuid4(), "b", 5, NOW)])
    assert spans.finished() == []
    assert len(inner.pushed) == 2


async def test_a_failed_push_is_an_error_span_and_the_error_goes_on(spans: Spans) -> None:
    queue = spans.tracing.queue(FakeQueue(fail=True))  # type: ignore[arg-type]
    with spans.tracer.start_as_current_span("submit"), pytest.raises(QueueUnavailable):
        await queue.push([Dispatch(uuid.uuid4(), "a", 5, NOW), Dispatch(uuid.uuid4(), "b", 5, NOW)])
    span = spans.one("dispatch")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["taskflow.queues"] == ("a", "b")


def test_a_scheduler_pass_is_exported_only_when_it_enqueued(spans: Spans) -> None:
    with spans.tracing.scheduling() as idle:
        idle.enqueued([], [])
    assert spans.finished() == []
    ids = [uuid.uuid4(), uuid.uuid4()]
    with spans.tracing.scheduling() as busy:
        inside = spans.tracing.current()
        busy.enqueued(["nightly", "hourly", "nightly"], ids)
    span = spans.one("schedule")
    assert span.parent is None
    assert inside == traceparent(span.context)
    assert dict(span.attributes or {}) == {
        "taskflow.schedules": ("hourly", "nightly"),
        "taskflow.task.count": 2,
    }


def test_submit_continues_the_producers_trace_and_keeps_it_with_the_task(
    spans: Spans,
) -> None:
    container = build_container(Settings(), load_registry(None, debug_tasks=True))
    repo = InMemoryTaskRepository(container.clock())
    container.repository.override(providers.Object(repo))
    container.queue.override(
        providers.Object(spans.tracing.queue(InMemoryTaskQueue(container.clock())))
    )
    container.tracing.override(providers.Object(spans.tracing))
    with TestClient(app=create_app(container)) as client:
        one = client.post(
            "/api/tasks",
            json={"type": "debug.echo", "payload": {}},
            headers={"traceparent": PRODUCER},
        )
        batch = client.post("/api/tasks/batch", json={"tasks": [{"type": "nope", "payload": {}}]})
        listed = client.get("/api/tasks")
    assert one.status_code == 202, one.text
    assert "traceparent" not in one.json()  # not part of the task's JSON
    assert (batch.status_code, listed.status_code) == (400, 200)
    submits = spans.finished("submit")
    assert len(submits) == 2  # the list is not traced
    first, refused = submits
    assert first.kind is SpanKind.SERVER
    assert first.parent is not None
    assert first.parent.span_id == int(PRODUCER.split("-")[2], 16)
    assert first.context.trace_id == int(PRODUCER.split("-")[1], 16)
    assert dict(first.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/api/tasks",
        "http.response.status_code": 202,
    }
    assert (refused.attributes or {})["http.response.status_code"] == 400
    assert refused.status.status_code is StatusCode.UNSET  # the client's fault
    assert refused.parent is None
    dispatch = spans.one("dispatch")
    assert dispatch.parent is not None
    assert dispatch.parent.span_id == first.context.span_id
    task = next(iter(repo._tasks.values()))
    assert task.traceparent == traceparent(first.context)


def test_tracing_off_or_with_no_provider_set_is_no_tracing_at_all() -> None:
    assert open_tracing("off") is None
    assert open_tracing("auto") is None  # no test sets the process's provider
    container = build_container(Settings(), load_registry(None, debug_tasks=True))
    assert container.tracing() is None
    assert not isinstance(container.queue(), TracedQueue)


def test_without_the_extra_taskflow_serves_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if it were not installed
    assert not installed()
    assert open_tracing("auto") is None
    with pytest.raises(ConfigError, match=r"^TASKFLOW_TRACING=on needs OpenTelemetry: pip install"):
        Settings.from_env({"TASKFLOW_TRACING": "on"})
    container = build_container(Settings(), load_registry(None, debug_tasks=True))
    repo = InMemoryTaskRepository(container.clock())
    container.repository.override(providers.Object(repo))
    container.queue.override(providers.Object(InMemoryTaskQueue(container.clock())))
    with TestClient(app=create_app(container)) as client:
        response = client.post(
            "/api/tasks",
            json={"type": "debug.echo", "payload": {}},
            headers={"traceparent": PRODUCER},
        )
    assert response.status_code == 202, response.text
    assert [t.traceparent for t in repo._tasks.values()] == [None]


def test_tracing_on_with_an_exporter_not_installed_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^OTEL_TRACES_EXPORTER: .*'zipkin'"):
        configure_sdk({"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize("value", ["yes", "enabled", "1"])
def test_a_bad_tracing_setting_stops_the_process_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^TASKFLOW_TRACING must be one of auto, on, off"):
        Settings.from_env({"TASKFLOW_TRACING": value})


def test_the_tracing_setting_defaults_to_auto() -> None:
    assert Settings.from_env({}).tracing == "auto"
    assert Settings.from_env({"TASKFLOW_TRACING": "ON"}).tracing == "on"
