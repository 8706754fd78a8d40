"""A worker's own HTTP server, on ``TASKFLOW_WORKER_HTTP_PORT``: ``/metrics`` (what this
worker counted), ``/health/live`` and ``/health/ready`` (it reaches PostgreSQL and Redis).

With ``TASKFLOW_METRICS_AUTH=true`` its ``/metrics`` asks for a key with the ``read`` scope
once one exists, checked as the API checks it (``KeyCheck``); ``/health/*`` stays open."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from taskflow.containers import Container
from taskflow.entrypoints.http.auth import checking_keys
from taskflow.entrypoints.http.head_limits import PROTOCOL as HEAD_LIMITED_PROTOCOL
from taskflow.entrypoints.http.health import Probes, check, live
from taskflow.entrypoints.http.metrics import metrics_text
from taskflow.entrypoints.http.problems import RETRY_AFTER_SECONDS
from taskflow.entrypoints.http.schemas import ReadinessOut


@get("/health/ready", operation_id="worker_ready")
async def worker_ready(probes: NamedDependency[Probes]) -> Response[ReadinessOut]:
    """Ready when the worker can claim and record: both the store and the queue answer."""
    store, queue = await asyncio.gather(check(probes.store), check(probes.queue))
    if store.status == "up" and queue.status == "up":
        return Response(ReadinessOut("ok", {"database": store, "queue": queue}))
    return Response(
        ReadinessOut("unavailable", {"database": store, "queue": queue}),
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def worker_app(container: Container) -> Litestar:
    def probes() -> Probes:
        return Probes(store=container.repository().ping, queue=container.queue().ping)

    app = Litestar(
        route_handlers=[live, worker_ready, metrics_text],
        dependencies={"probes": Provide(probes, sync_to_thread=False)},
        state=State({"metrics": container.metrics(), "fleet": None}),
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # Without it every route here is open: no key store is read.
    if container.settings().metrics_auth:
        app.asgi_handler = checking_keys(app.asgi_handler, container)
    return app


class SignalFreeServer(uvicorn.Server):
    """uvicorn without its own signal handling: our handlers stop the process (and the worker
    in it), and exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_worker_http(
    container: Container, sock: socket.socket | None
) -> AsyncIterator[None]:
    """Serve the worker's app on ``sock`` (bound by the caller) while the block runs."""
    if sock is None:
        yield
        return
    config = uvicorn.Config(
        worker_app(container),
        log_config=None,
        access_log=False,
        lifespan="off",
        http=HEAD_LIMITED_PROTOCOL,  # the API's bounds on a request's head
    )
    server = SignalFreeServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(serving), timeout=5)
        if not serving.done():
            serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
