"""Start-up and shutdown of the long-running processes: api, worker and dev."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
from litestar import Litestar

from taskflow.adapters.prometheus import shared_across_processes
from taskflow.adapters.sql.engine import migrate
from taskflow.config import Settings
from taskflow.containers import (
    Container,
    close_container,
    open_enqueued_listener,
    open_lease_service,
)
from taskflow.domain.redaction import without_passwords
from taskflow.entrypoints import logs
from taskflow.entrypoints.deliverer import delivering
from taskflow.entrypoints.errors import CannotStart
from taskflow.entrypoints.exposure import check_exposure
from taskflow.entrypoints.http.app import app_from_environment, create_app
from taskflow.entrypoints.http.head_limits import PROTOCOL as HEAD_LIMITED_PROTOCOL
from taskflow.entrypoints.lease_keeper import LeaseKeeper
from taskflow.entrypoints.retention import start_pruning, stop_pruning
from taskflow.entrypoints.scheduler import start_scheduler
from taskflow.entrypoints.startup import tune_gc_for_serving, warm_store
from taskflow.entrypoints.store_lock import hold_store
from taskflow.entrypoints.sweeper import lost_lease_facts
from taskflow.entrypoints.whereabouts import ShutdownWatch, log_whereabouts
from taskflow.entrypoints.worker import HANDLER_THREAD, Worker, WorkerOptions
from taskflow.entrypoints.worker_http import SignalFreeServer, serving_worker_http

log = logging.getLogger("taskflow")

#: Seconds past a process's grace after which a shutdown still under way says what it waits on.
REPORT_AFTER = 15.0


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a process's main coroutine; every log line it left waiting is written on return."""
    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is not built for every platform
            return asyncio.run(coro)
        return uvloop.run(coro)
    finally:
        logs.finish()


def worker_options(
    settings: Settings, *, queues: list[str], concurrency: int | None
) -> WorkerOptions:
    return WorkerOptions(
        queues=tuple(queues),
        concurrency=concurrency or settings.worker_concurrency,
        prefetch=settings.worker_prefetch,
        heartbeat_seconds=settings.heartbeat_seconds,
        sweep_seconds=settings.sweep_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )


#: How every API process serves: our logging, no access log, the app's lifespan, 10 s to finish,
#: and a bounded request head (head_limits).
_SERVING: dict[str, Any] = {
    "http": HEAD_LIMITED_PROTOCOL,
    "log_config": None,
    "access_log": False,
    "lifespan": "on",
    "timeout_graceful_shutdown": 10,
}


def _server(container: Container, host: str, port: int) -> uvicorn.Server:
    return SignalFreeServer(uvicorn.Config(create_app(container), host=host, port=port, **_SERVING))


def listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound before the process says it runs or starts any work."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As uvicorn does: a port whose last connections linger in TIME_WAIT is free to serve.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise CannotStart(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def serve_api_processes(
    container: Container, *, host: str, port: int, processes: int, metrics: bool = True
) -> int:
    """Several API processes on one port, each with its own app, container and sweep.

    One Python process saturates one core; uvicorn's supervisor binds the port once and keeps
    ``processes`` children serving it (and restarts any that dies). A scrape reaches any one
    child: with ``metrics``, every child counts into the files of a directory this process
    makes for them, and each ``/metrics`` answers the sum of all (decision 26).
    """
    # uvicorn binds again at once; trying first makes a taken port one line of ours.
    listen(host, port).close()
    asyncio.run(_check_then_close(container, host))
    log.info("api listening", extra={"url": f"http://{host}:{port}", "processes": processes})
    with shared_across_processes() if metrics else contextlib.nullcontext():
        uvicorn.run(
            "taskflow.entrypoints.runtime:api_process_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            **_SERVING,
        )
    return 0


async def _check_then_close(container: Container, host: str) -> None:
    """``check_exposure`` for the processes to come, on a connection of this one's."""
    try:
        await check_exposure(container, host)
    finally:
        await container.engine().dispose()


def api_process_app() -> Litestar:
    """The app of one of several API processes, built in it.

    uvicorn ends such a process by raising the signal it caught again, once the app has shut
    down: no exit handler runs then, so the app's shutdown writes the waiting log lines and
    has later ones written as they come.
    """
    app = app_from_environment()
    app.on_shutdown.append(logs.finish)
    return app


async def serve_api(container: Container, *, host: str, port: int) -> int:
    with listen(host, port) as sock:  # a taken port first: one line, before anything starts
        await check_exposure(container, host)
        server = _server(container, host, port)
        tune_gc_for_serving()
        _stop_on_signals(server, grace=_SERVING["timeout_graceful_shutdown"])
        log.info("api listening", extra={"url": f"http://{host}:{port}"})
        await server.serve(sockets=[sock])
    return 0


def build_worker(container: Container, options: WorkerOptions) -> Worker:
    """A worker whose leases a `LeaseKeeper` thread renews on a connection of its own."""
    keeper = LeaseKeeper(lambda: open_lease_service(container), interval=options.heartbeat_seconds)
    return Worker(
        container.execution_service(),
        container.registry(),
        options,
        keeper,
        cancel_notices=container.cancel_notices(),
        fleet=container.fleet_service(),
        metrics=container.metrics(),
        tracing=container.tracing(),
    )


def _worker_http_socket(container: Container) -> socket.socket | None:
    settings = container.settings()
    if settings.worker_http_port is None:
        return None
    return listen(settings.host, settings.worker_http_port)


async def serve_worker(container: Container, options: WorkerOptions) -> int:
    http = _worker_http_socket(container)  # a taken port stops the worker before it starts
    stop, force = _stop_on_signals(grace=options.shutdown_grace_seconds)
    worker = build_worker(container, options)
    tune_gc_for_serving()
    listener = open_enqueued_listener(container, container.execution_service().dispatch_stored)
    listening = None if listener is None else asyncio.create_task(listener.run())
    await warm_store(container, "claim", "save")
    scheduling = start_scheduler(container, stop)
    pruning = start_pruning(container.retention_service())
    try:
        async with serving_worker_http(container, http), delivering(container):
            await worker.run_forever(stop, force)
    finally:
        await stop_pruning(pruning)
        background = [job for job in (listening, scheduling) if job is not None]
        for job in background:
            job.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await close_container(container)
    return _exit_now(0) if worker.left_running else 0


async def serve_dev(container: Container, *, host: str, port: int, options: WorkerOptions) -> int:
    """API and worker in one process, on the embedded store and the in-process queue.

    It holds its SQLite file's lock from start to end, as the file's only worker: so, at
    start, whatever the file says is running was left by a process that died.
    """
    settings = container.settings()
    with hold_store(settings.database_url) as lock, listen(host, port) as sock:
        await migrate(settings.database_url)
        await check_exposure(container, host)
        await _take_back_orphans(container, lock)
        server = _server(container, host, port)
        stop, force = _stop_on_signals(server, grace=options.shutdown_grace_seconds)
        worker = Worker(
            container.execution_service(),
            container.registry(),
            options,
            cancel_notices=container.cancel_notices(),
            fleet=container.fleet_service(),
            metrics=container.metrics(),
            tracing=container.tracing(),
        )
        working = asyncio.create_task(worker.run_forever(stop, force))
        scheduling = start_scheduler(container, stop)
        pruning = start_pruning(container.retention_service())
        log.info(
            "taskflow dev is running",
            extra={"url": f"http://{host}:{port}", "database": _safe_url(settings.database_url)},
        )
        try:
            async with delivering(container):
                await server.serve(sockets=[sock])  # returns on Ctrl-C / SIGTERM
        finally:
            stop.set()
            await working
            if scheduling is not None:
                await scheduling
            await stop_pruning(pruning)
    return _exit_now(0) if worker.left_running else 0


async def _take_back_orphans(container: Container, lock: Path | None) -> None:
    """Run again at once what a killed `taskflow dev` left running, not after its lease."""
    if lock is None:
        log.info(
            "not taking back running tasks: other workers may share this store; "
            "what a dead process left runs again when its lease expires",
            extra={"database": _safe_url(container.settings().database_url)},
        )
        return
    taken = await container.execution_service().take_back_orphans()
    for lost in taken:
        log.warning("attempt of a dead process failed", extra=lost_lease_facts(lost))
    log.info("took back tasks left running by a process that died", extra={"tasks": len(taken)})


async def run_migrations(container: Container) -> int:
    url = container.settings().database_url
    await migrate(url)
    log.info("database migrated", extra={"database": _safe_url(url)})
    return 0


def exit_now_if_handlers_linger(code: int) -> int:
    """End the process even if plain `def` handlers still run in their threads.

    Their attempts were handed back at shutdown and run elsewhere by now; Python would wait
    for those threads at exit for as long as they run, so leave without waiting.
    """
    lingering = [t for t in threading.enumerate() if t.name.startswith(HANDLER_THREAD)]
    if not lingering:
        return code
    log.warning("exiting with handler threads still running", extra={"threads": len(lingering)})
    return _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """End the process without waiting for what still runs: handlers whose attempts were
    handed back, a plain `def` one in its thread or an ``async def`` one that ignored its
    cancel, which asyncio's own exit would wait for as long as it runs."""
    logs.finish()
    logging.shutdown()
    os._exit(code)


def _stop_on_signals(
    server: uvicorn.Server | None = None, *, grace: float
) -> tuple[asyncio.Event, asyncio.Event]:
    """First SIGTERM/SIGINT: stop claiming and drain. Second: stop now.

    A shutdown still under way ``REPORT_AFTER`` seconds past its ``grace`` logs what it waits on;
    SIGUSR1, at any time, logs what the process is doing (`whereabouts`).
    """
    stop, force = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: stopping now")
            force.set()
            if server is not None:
                server.force_exit = True
        else:
            log.info("signal received: shutting down gracefully")
            ShutdownWatch(loop, after=grace + REPORT_AFTER)
            stop.set()
            if server is not None:
                server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    loop.add_signal_handler(signal.SIGUSR1, log_whereabouts, loop, "what this process is doing")
    return stop, force


def _safe_url(url: str) -> str:
    return without_passwords(url)  # never log a password
