"""Task endpoints: thin; the use cases live in the domain's services."""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from taskflow.domain.errors import InvalidSubmission, PayloadTooLarge
from taskflow.domain.limits import MAX_BATCH, metadata_size_problem, payload_size_problem
from taskflow.domain.services import TaskService
from taskflow.domain.unstorable import refuse_unstorable
from taskflow.entrypoints.http.answers import JsonAnswer
from taskflow.entrypoints.http.auth import tenant_of
from taskflow.entrypoints.http.body_limits import NO_NUL, Limits, json_body, optional_json_body
from taskflow.entrypoints.http.listing import TaskCountsOut, TaskPageOut, parse_list_request
from taskflow.entrypoints.http.openapi import (
    SUBMIT_PROBLEMS,
    ActorOperation,
    ListTasksOperation,
    SubmitOneOperation,
    SubmitOperation,
    problem_responses,
)
from taskflow.entrypoints.http.path_params import TaskIdPath
from taskflow.entrypoints.http.retrying import RetriedOut, RetryIn, RetryManyIn, actor
from taskflow.entrypoints.http.schemas import (
    AttemptOut,
    AttemptsOut,
    ChangeOut,
    DeliveriesOut,
    DeliveryOut,
    SubmitBatchIn,
    SubmitTaskIn,
    TaskOut,
    TasksOut,
)
from taskflow.entrypoints.logs import EventLog, task_facts

log = logging.getLogger("taskflow.api")
events = EventLog(log)

IDEMPOTENCY_KEY = "Idempotency-Key"
_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def parse_task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidSubmission(f"task id must be a UUID, got {raw[:64]!r}", field="id") from None


def check_payload(payload: dict[str, Any], limits: Limits, *, nul_possible: bool = True) -> None:
    """The payload's encoded size, and no U+0000 in it: refused here, before any store, so
    that every store answers alike (``taskflow.domain.unstorable``). ``nul_possible`` False:
    the request's body showed no escaped U+0000 (``body_limits.NO_NUL``), so nothing in it
    can hold one."""
    encoded = _encode(payload)
    problem = payload_size_problem(len(encoded), limits.max_payload_bytes)
    if problem:
        raise PayloadTooLarge(problem, field="payload")
    if nul_possible:
        refuse_unstorable(encoded, payload, "payload")


def check_values(data: SubmitTaskIn, limits: Limits, *, nul_possible: bool = True) -> None:
    """The payload's and metadata's encoded sizes, and no U+0000 in either."""
    check_payload(data.payload, limits, nul_possible=nul_possible)
    if data.metadata is not None:
        encoded = _encode(data.metadata)
        problem = metadata_size_problem(len(encoded))
        if problem:
            raise InvalidSubmission(problem, field="metadata")
        if nul_possible:
            refuse_unstorable(encoded, data.metadata, "metadata")


def request_hash(data: msgspec.Struct) -> str:
    """A digest of the decoded request: equal for JSON-equal bodies, whatever their key order
    or spacing, so a retried request matches the one that first used its Idempotency-Key."""
    return hashlib.sha256(_encode_sorted(data)).hexdigest()


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @post(
        "/",
        status_code=202,
        before_request=json_body,
        summary="Submit a task",
        operation_id="submit_task",
        operation_class=SubmitOneOperation,
        responses=problem_responses(*SUBMIT_PROBLEMS),
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SubmitTaskIn],
        service: NamedDependency[TaskService],
    ) -> Response[TaskOut]:
        check_values(data, request.app.state.limits, nul_possible=NO_NUL not in request.scope)
        key = request.headers.get(IDEMPOTENCY_KEY)
        tenant = tenant_of(request)
        replayed = False
        if key is None:
            task = await service.submit(data, tenant=tenant)
        else:
            [task], replayed = await service.submit_idempotent(
                [data], key=key, request_hash=request_hash(data), batch=False, tenant=tenant
            )
        if not replayed:
            request.app.state.metrics.submitted((task,))
        if log.isEnabledFor(logging.INFO):  # spare building the facts when nobody reads them
            events.info("task replayed" if replayed else "task submitted", task_facts(task))
        headers = {"Location": f"/api/tasks/{task.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JsonAnswer(TaskOut.from_task(task), status_code=202, headers=headers)

    @post(
        "/batch",
        status_code=202,
        before_request=json_body,
        summary=f"Submit 1-{MAX_BATCH} tasks at once: all are accepted or none",
        operation_id="submit_batch",
        operation_class=SubmitOperation,
        responses=problem_responses(*SUBMIT_PROBLEMS),
    )
    async def submit_batch(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SubmitBatchIn],
        service: NamedDependency[TaskService],
    ) -> Response[TasksOut]:
        limits = request.app.state.limits
        nul_possible = NO_NUL not in request.scope  # one look at the body for all its tasks
        for index, submission in enumerate(data.tasks):
            try:
                check_values(submission, limits, nul_possible=nul_possible)
            except InvalidSubmission as exc:
                raise exc.under(f"tasks[{index}]") from None
        key = request.headers.get(IDEMPOTENCY_KEY)
        tenant = tenant_of(request)
        replayed = False
        if key is None:
            tasks = await service.submit_many(data.tasks, tenant=tenant)
        else:
            tasks, replayed = await service.submit_idempotent(
                data.tasks, key=key, request_hash=request_hash(data), tenant=tenant
            )
        if not replayed:
            request.app.state.metrics.submitted(tasks)
        if log.isEnabledFor(logging.INFO):
            event = "task replayed" if replayed else "task submitted"
            for task in tasks:
                events.info(event, task_facts(task))
            log.info(
                "batch replayed" if replayed else "batch submitted",
                extra={"tasks": len(tasks)},
            )
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JsonAnswer(
            TasksOut([TaskOut.from_task(t) for t in tasks]), status_code=202, headers=headers
        )

    # Before "/{task_id}": "stats" is not an id.
    @get(
        "/stats",
        summary="Count tasks per queue, type and status",
        operation_id="task_stats",
        responses=problem_responses(503),
    )
    async def task_stats(
        self, request: Request[Any, Any, Any], service: NamedDependency[TaskService]
    ) -> TaskCountsOut:
        return TaskCountsOut.from_counts(await service.stats(tenant=tenant_of(request)))

    @get(
        "/",
        summary="List tasks newest first, a page at a time",
        description="Filters: status (repeatable), type, queue, created_after, created_before, "
        "metadata.KEY=VALUE; limit; cursor (the next_cursor of the previous page).",
        operation_id="list_tasks",
        operation_class=ListTasksOperation,
        responses=problem_responses(400, 503),
    )
    async def list_tasks(
        self, request: Request[Any, Any, Any], service: NamedDependency[TaskService]
    ) -> TaskPageOut:
        asked = parse_list_request(request.query_params, tenant=tenant_of(request))
        page = await service.find(asked.query, after=asked.after, limit=asked.limit)
        return TaskPageOut.from_page(page)

    @get(
        "/{task_id:str}",
        summary="Get a task",
        operation_id="get_task",
        responses=problem_responses(400, 404, 503),
    )
    async def get_task(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskIdPath,
        service: NamedDependency[TaskService],
    ) -> TaskOut:
        task = await service.get(parse_task_id(task_id), tenant=tenant_of(request))
        return TaskOut.from_task(task)

    @get(
        "/{task_id:str}/attempts",
        summary="A task's history: its attempts and the changes people made, oldest first",
        operation_id="list_attempts",
        responses=problem_responses(400, 404, 503),
    )
    async def list_attempts(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskIdPath,
        service: NamedDependency[TaskService],
    ) -> AttemptsOut:
        attempts, changes = await service.history(parse_task_id(task_id), tenant=tenant_of(request))
        return AttemptsOut(
            [AttemptOut.from_attempt(a) for a in attempts],
            [ChangeOut.from_change(c) for c in changes],
        )

    @get(
        "/{task_id:str}/deliveries",
        summary="A task's completion-webhook deliveries, oldest first",
        operation_id="list_deliveries",
        responses=problem_responses(400, 404, 503),
    )
    async def list_deliveries(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskIdPath,
        service: NamedDependency[TaskService],
    ) -> DeliveriesOut:
        url, deliveries = await service.deliveries(
            parse_task_id(task_id), tenant=tenant_of(request)
        )
        return DeliveriesOut(url, [DeliveryOut.from_delivery(d) for d in deliveries])

    @post(
        "/{task_id:str}/retry",
        status_code=202,
        summary="Run a FAILED or CANCELLED task again (409 for any other status)",
        description='An optional body {"payload": {...}} replaces the task\'s payload; it is '
        "checked like a submission's, and the change is kept in the task's history.",
        operation_id="retry_task",
        before_request=optional_json_body,
        operation_class=ActorOperation,
        responses=problem_responses(400, 404, 408, 409, 413, 415, 503),
    )
    async def retry_task(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskIdPath,
        service: NamedDependency[TaskService],
        data: JSONBody[RetryIn | None] = None,
    ) -> TaskOut:
        payload = None if data is None else data.payload
        if payload is not None:
            check_payload(payload, request.app.state.limits)
        task = await service.retry(
            parse_task_id(task_id), payload=payload, by=actor(request), tenant=tenant_of(request)
        )
        log.info("task retried", extra=task_facts(task))
        return TaskOut.from_task(task)

    @post(
        "/retry",
        status_code=200,
        before_request=json_body,
        summary="Run again up to `limit` FAILED or CANCELLED tasks that match the filters",
        description="Safe to repeat: a task is revived once, by one request, however many "
        "run at once; the answer says how many this one revived.",
        operation_id="retry_tasks",
        operation_class=ActorOperation,
        responses=problem_responses(400, 408, 413, 415, 503),
    )
    async def retry_tasks(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RetryManyIn],
        service: NamedDependency[TaskService],
    ) -> RetriedOut:
        query = data.query(tenant=tenant_of(request))
        tasks = await service.retry_many(query, limit=data.limit, by=actor(request))
        log.info("tasks retried", extra={"tasks": len(tasks)})
        return RetriedOut.of(tasks)

    @post(
        "/{task_id:str}/cancel",
        status_code=200,
        summary="Cancel a task: PENDING at once, PROCESSING by stopping its handler",
        operation_id="cancel_task",
        responses=problem_responses(400, 404, 409, 503),
    )
    async def cancel_task(
        self,
        request: Request[Any, Any, Any],
        task_id: TaskIdPath,
        service: NamedDependency[TaskService],
    ) -> TaskOut:
        task = await service.cancel(parse_task_id(task_id), tenant=tenant_of(request))
        if not task.cancel_requested:  # else its worker counts it, once the handler stops
            request.app.state.metrics.ended(task)
        events.info(
            "cancel requested" if task.cancel_requested else "task cancelled", task_facts(task)
        )
        return TaskOut.from_task(task)
