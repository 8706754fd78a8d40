"""One trace from the producer's request to the handler, on the real PostgreSQL and Redis.

The API app and a worker run in this one process (the SDK's in-memory exporter is in-process),
each on its own container and its own event loop (Litestar's test client serves the app from
a thread of its own), so that they meet only through the store and the queue, as two processes
would: the worker's spans find their parent in the traceparent the task row keeps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import make_url

import taskflow
from taskflow import transactional
from taskflow.adapters.otel.spans import Tracing, traceparent
from taskflow.adapters.sql import SqlTaskRepository, create_engine
from taskflow.adapters.sql.engine import migrate
from taskflow.config import Settings
from taskflow.containers import Container, build_container, close_container
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.scheduler import Scheduler
from taskflow.entrypoints.worker import Worker, WorkerOptions
from taskflow.handlers import TaskContext
from taskflow.registry import Registry
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
HANDLERS = PROVIDER.get_tracer("handlers")  # what a user's handler traces with
PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
BOUND = 60.0  # seconds: generous, for a loaded machine

tasks = Registry()


@tasks.task("trace.flaky", max_retries=2)
async def flaky(payload: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return {"attempt": ctx.attempt}


@tasks.task("trace.threaded")
def threaded(payload: dict[str, Any], ctx: TaskContext) -> dict[str, bool]:
    with HANDLERS.start_as_current_span("inner work"):
        return {"ok": True}


tasks.periodic("trace.tick", type="trace.threaded", every=timedelta(seconds=1))


@pytest.fixture
def database_url(pg_database_factory: Callable[[], str]) -> str:
    return pg_database_factory()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def deployment(database_url: str, redis_prefix: str) -> Container:
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        retry_backoff_base=0.05,
        retry_backoff_max=0.1,
        heartbeat_seconds=1.0,
        sweep_seconds=1.0,
    )
    container = build_container(settings, tasks)
    container.tracing.override(providers.Object(Tracing(PROVIDER)))
    return container


@asynccontextmanager
async def working(container: Container) -> AsyncIterator[tuple[Worker, Container]]:
    """A worker on a container of its own, running until the block ends."""
    options = WorkerOptions(queues=("default",), poll_seconds=0.05, sweep_seconds=1.0)
    worker = Worker(container.execution_service(), tasks, options, tracing=container.tracing())
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        yield worker, container
    finally:
        stop.set()
        await running
        await close_container(container)


async def finished(container: Container, task_id: str) -> dict[str, Any]:
    repository = container.repository()
    async with asyncio.timeout(BOUND):
        while True:
            task = await repository.get(uuid.UUID(task_id))
            if task.is_final:
                return {"status": task.status.value, "traceparent": task.traceparent}
            await asyncio.sleep(0.05)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def wait_spans(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    async with asyncio.timeout(BOUND):  # an attempt's span ends once its outcome is written
        while len(named(exporter, name)) < count:  # noqa: ASYNC110 - spans are not awaitable
            await asyncio.sleep(0.02)
    return sorted(named(exporter, name), key=lambda s: s.start_time or 0)


async def test_submit_dispatch_and_each_attempt_share_the_producers_trace(
    database_url: str, redis_prefix: str, spans: InMemorySpanExporter
) -> None:
    await migrate(database_url)
    api = deployment(database_url, redis_prefix)
    async with AsyncTestClient(app=create_app(api)) as client:
        response = await client.post(
            "/api/tasks",
            json={"type": "trace.flaky", "payload": {}},
            headers={"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"},
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        async with working(deployment(database_url, redis_prefix)) as (worker, store):
            task = await finished(store, task_id)
            executes = await wait_spans(spans, "execute", 2)
    assert task["status"] == "SUCCESS"

    [submit] = named(spans, "submit")
    assert submit.kind is SpanKind.SERVER
    assert submit.parent is not None
    assert f"{submit.parent.span_id:016x}" == PRODUCER_SPAN
    assert task["traceparent"] == traceparent(submit.context)
    assert {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()} == {PRODUCER_TRACE}

    first_dispatch, retry_dispatch = sorted(
        named(spans, "dispatch"), key=lambda s: s.start_time or 0
    )
    assert first_dispatch.parent is not None
    assert first_dispatch.parent.span_id == submit.context.span_id
    assert (first_dispatch.attributes or {})["taskflow.task.id"] == task_id

    failed, succeeded = executes
    for attempt, span in enumerate(executes, start=1):
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert span.parent.span_id == submit.context.span_id
        facts = span.attributes or {}
        assert facts["taskflow.task.id"] == task_id
        assert facts["taskflow.task.type"] == "trace.flaky"
        assert facts["taskflow.queue"] == "default"
        assert facts["taskflow.attempt"] == attempt
        assert facts["taskflow.worker.id"] == worker.id
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "RuntimeError: the first attempt fails"
    [event] = failed.events
    assert (event.attributes or {})["exception.message"] == "the first attempt fails"
    assert (failed.attributes or {})["taskflow.task.status"] == "PENDING"
    # The retry's push is made while the failed attempt writes its outcome.
    assert retry_dispatch.parent is not None
    assert retry_dispatch.parent.span_id == failed.context.span_id
    assert succeeded.status.status_code is StatusCode.UNSET
    assert (succeeded.attributes or {})["taskflow.task.status"] == "SUCCESS"


async def test_a_request_without_traceparent_starts_the_trace_and_a_handlers_span_joins_it(
    database_url: str, redis_prefix: str, spans: InMemorySpanExporter
) -> None:
    await migrate(database_url)
    api = deployment(database_url, redis_prefix)
    async with AsyncTestClient(app=create_app(api)) as client:
        response = await client.post(
            "/api/tasks/batch", json={"tasks": [{"type": "trace.threaded", "payload": {}}] * 2}
        )
        assert response.status_code == 202, response.text
        ids = [t["id"] for t in response.json()["tasks"]]
        async with working(deployment(database_url, redis_prefix)) as (_, store):
            for task_id in ids:
                assert (await finished(store, task_id))["status"] == "SUCCESS"
            executes = await wait_spans(spans, "execute", 2)
    [submit] = named(spans, "submit")
    assert submit.parent is None
    assert (submit.attributes or {})["http.route"] == "/api/tasks/batch"
    [dispatch] = named(spans, "dispatch")
    assert (dispatch.attributes or {})["taskflow.task.count"] == 2
    assert {s.parent.span_id for s in executes if s.parent} == {submit.context.span_id}
    inner = named(spans, "inner work")
    assert {s.parent.span_id for s in inner if s.parent} == {s.context.span_id for s in executes}
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {submit.context.trace_id}


async def test_a_periodic_tick_starts_a_trace_of_its_own(
    database_url: str, redis_prefix: str, spans: InMemorySpanExporter
) -> None:
    await migrate(database_url)
    scheduling = deployment(database_url, redis_prefix)
    scheduler = Scheduler(
        scheduling.schedule_service(), scheduling.clock(), tracing=scheduling.tracing()
    )
    async with working(deployment(database_url, redis_prefix)):
        async with asyncio.timeout(BOUND):
            while not (done := await scheduler.run_once()).enqueued:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        [(_, _, task)] = done.enqueued
        assert (await finished(scheduling, str(task.id)))["status"] == "SUCCESS"
        [execute] = await wait_spans(spans, "execute", 1)
    await close_container(scheduling)
    [schedule] = named(spans, "schedule")  # the passes that enqueued nothing left no span
    assert schedule.parent is None
    assert (schedule.attributes or {})["taskflow.schedules"] == ("trace.tick",)
    assert task.traceparent == traceparent(schedule.context)
    assert execute.parent is not None
    assert execute.parent.span_id == schedule.context.span_id
    [dispatch] = named(spans, "dispatch")
    assert dispatch.parent is not None
    assert dispatch.parent.span_id == schedule.context.span_id


async def test_a_task_enqueued_in_the_callers_transaction_joins_the_callers_trace(
    database_url: str, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(database_url)
    # As in an application that set its tracer provider: enqueue reads it once, at first use.
    deployment = transactional._deployment()
    monkeypatch.setattr(
        transactional,
        "_deployment",
        lambda: transactional._Deployment(
            deployment.policy, deployment.max_payload_bytes, None, Tracing(PROVIDER)
        ),
    )
    url = make_url(database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        with HANDLERS.start_as_current_span("place order") as span:
            async with conn.transaction():
                task = await taskflow.enqueue(conn, "trace.threaded", {}, registry=tasks)
    finally:
        await conn.close()
    engine = create_engine(database_url)
    try:
        stored = await SqlTaskRepository(engine).get(task.id)
    finally:
        await engine.dispose()
    assert stored.traceparent == task.traceparent == traceparent(span.get_span_context())
