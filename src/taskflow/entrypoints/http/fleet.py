"""Queues and workers over HTTP: ``GET /api/workers``, ``GET /api/queues``, pause and resume a
queue (docs/api.md, decision 25)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency

from taskflow.domain.fleet import QueueStats, WorkerInfo
from taskflow.domain.services.fleet import FleetService
from taskflow.entrypoints.http.openapi import problem_responses
from taskflow.entrypoints.http.path_params import QueueNamePath
from taskflow.entrypoints.http.schemas import timestamp


class WorkerOut(msgspec.Struct, kw_only=True):
    """A live worker, as its last heartbeat said."""

    id: str
    host: str
    pid: int
    version: str
    queues: list[str]
    concurrency: int
    running: list[str]  # task ids
    running_count: int
    started_at: str
    last_seen_at: str

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerOut:
        return cls(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            version=worker.version,
            queues=list(worker.queues),
            concurrency=worker.concurrency,
            running=[str(i) for i in worker.running],
            running_count=len(worker.running),
            started_at=timestamp(worker.started_at),
            last_seen_at=timestamp(worker.last_seen_at),
        )


class WorkersOut(msgspec.Struct):
    workers: list[WorkerOut]


class ThroughputOut(msgspec.Struct, kw_only=True):
    """Tasks that reached SUCCESS or FAILED over the last minute."""

    succeeded: int
    failed: int


class QueueLimitsOut(msgspec.Struct, kw_only=True):
    """The queue's configured limits (Registry, then TASKFLOW_QUEUE_LIMITS); null: none."""

    rate: str | None
    concurrency: int | None


class QueueOut(msgspec.Struct, kw_only=True):
    """One queue now; ``unconsumed``: work waits (ready or delayed) and no live worker
    consumes the queue."""

    name: str
    ready: int
    delayed: int
    processing: int
    oldest_ready_age_seconds: float | None
    throughput_last_minute: ThroughputOut
    limits: QueueLimitsOut
    paused: bool
    consumers: int
    unconsumed: bool

    @classmethod
    def of(cls, queue: QueueStats) -> QueueOut:
        age = queue.oldest_ready_age_seconds
        return cls(
            name=queue.name,
            ready=queue.ready,
            delayed=queue.delayed,
            processing=queue.processing,
            oldest_ready_age_seconds=None if age is None else round(age, 3),
            throughput_last_minute=ThroughputOut(
                succeeded=queue.succeeded_last_minute, failed=queue.failed_last_minute
            ),
            limits=QueueLimitsOut(rate=queue.rate_limit, concurrency=queue.concurrency),
            paused=queue.paused,
            consumers=queue.consumers,
            unconsumed=queue.unconsumed,
        )


class QueuesOut(msgspec.Struct):
    queues: list[QueueOut]


@get(
    "/api/workers",
    summary="The live workers: what they serve and run, and their last heartbeat",
    operation_id="list_workers",
    tags=["fleet"],
    responses=problem_responses(503),
)
async def list_workers(fleet: NamedDependency[FleetService]) -> WorkersOut:
    return WorkersOut([WorkerOut.of(worker) for worker in await fleet.workers()])


class QueueController(Controller):
    path = "/api/queues"
    tags = ["fleet"]

    @get(
        "/",
        summary="Every queue in use: depth, oldest ready task, throughput, limits, consumers",
        operation_id="list_queues",
        responses=problem_responses(503),
    )
    async def list_queues(self, fleet: NamedDependency[FleetService]) -> QueuesOut:
        return QueuesOut([QueueOut.of(queue) for queue in await fleet.queues()])

    @post(
        "/{name:str}/pause",
        status_code=200,
        summary="Start no task of this queue until it is resumed; submissions are still taken",
        operation_id="pause_queue",
        responses=problem_responses(400, 503),
    )
    async def pause(self, name: QueueNamePath, fleet: NamedDependency[FleetService]) -> QueueOut:
        return QueueOut.of(await fleet.pause(name))

    @post(
        "/{name:str}/resume",
        status_code=200,
        summary="Start this queue's tasks again",
        operation_id="resume_queue",
        responses=problem_responses(400, 503),
    )
    async def resume(self, name: QueueNamePath, fleet: NamedDependency[FleetService]) -> QueueOut:
        return QueueOut.of(await fleet.resume(name))
