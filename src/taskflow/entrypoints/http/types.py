"""The registered task types, as part of the contract: ``GET /api/types``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from taskflow.domain.limits import DEFAULT_MAX_RETRIES, DEFAULT_PRIORITY, DEFAULT_QUEUE
from taskflow.domain.retry import RetryPolicy
from taskflow.entrypoints.http.openapi import problem_responses
from taskflow.entrypoints.http.schemas import TaskTypeOut, TaskTypesOut
from taskflow.registry import Registry


def describe_types(registry: Registry, policy: RetryPolicy) -> TaskTypesOut:
    """Every type of ``registry``, by name, with the defaults a submission of it gets."""
    items = []
    for kind in sorted(registry, key=lambda k: k.name):
        own = policy.with_overrides(base=kind.backoff_base, max=kind.backoff_max)
        items.append(
            TaskTypeOut(
                type=kind.name,
                queue=kind.queue or DEFAULT_QUEUE,
                priority=DEFAULT_PRIORITY if kind.priority is None else kind.priority,
                max_retries=DEFAULT_MAX_RETRIES if kind.max_retries is None else kind.max_retries,
                timeout_seconds=kind.timeout_seconds,
                backoff_base=own.base,
                backoff_max=own.max,
                payload_schema=kind.payload_schema(),
            )
        )
    return TaskTypesOut(items)


@get(
    "/api/types",
    tags=["types"],
    summary="The registered task types and their payload schemas",
    operation_id="list_types",
    responses=problem_responses(),
)
async def list_types(request: Request[Any, Any, Any]) -> TaskTypesOut:
    # Built once at start: the registry does not change while the process runs.
    described: TaskTypesOut = request.app.state.types
    return described
