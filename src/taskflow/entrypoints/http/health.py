"""Liveness and readiness (docs/api.md, "HTTP API")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from taskflow.domain.redaction import without_passwords
from taskflow.entrypoints.http.problems import RETRY_AFTER_SECONDS
from taskflow.entrypoints.http.schemas import CheckOut, ReadinessOut

Probe = Callable[[], Awaitable[None]]
PROBE_TIMEOUT_SECONDS = 2.0


class Probes:
    """The dependencies readiness looks at: the store (required) and the queue (optional)."""

    def __init__(self, store: Probe, queue: Probe) -> None:
        self.store = store
        self.queue = queue


async def check(probe: Probe) -> CheckOut:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await probe()
    except Exception as exc:
        return CheckOut("down", without_passwords(f"{type(exc).__name__}: {exc}")[:300])
    return CheckOut("up")


@get(
    "/health/live",
    tags=["health"],
    summary="The process is up",
    operation_id="live",
    security=[{}],  # open, even once API keys exist
)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    tags=["health"],
    summary="The API can accept work",
    operation_id="ready",
    security=[{}],
    responses={
        503: ResponseSpec(
            ReadinessOut,
            description="The database is unreachable; retry after the Retry-After seconds.",
            generate_examples=False,
        )
    },
)
async def ready(probes: NamedDependency[Probes]) -> Response[ReadinessOut]:
    store, queue = await asyncio.gather(check(probes.store), check(probes.queue))
    checks = {"database": store, "queue": queue}
    if store.status != "up":
        return Response(
            ReadinessOut("unavailable", checks),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    # Without the queue submissions are still stored and dispatched later: degraded, not down.
    status = "ok" if queue.status == "up" else "degraded"
    return Response(ReadinessOut(status, checks), status_code=200)
