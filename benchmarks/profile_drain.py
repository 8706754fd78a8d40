"""One worker draining queued no-op tasks in this process, for profiling the worker's hot path.

    .venv/bin/python -m benchmarks.profile_drain [--tasks N] [--concurrency C]
        [--log-level LEVEL] [--cprofile] 2>/tmp/drain.log

Like `benchmarks.run`, it works in a database and Redis prefix of its own on the configured
servers and removes them at the end. It submits the tasks through `TaskService`, then runs a
real `Worker` (with its lease keeper and sweeps) on this process's event loop until all are
SUCCESS, and prints the CPU time per task of this process and, when they run on this host, of
PostgreSQL and Redis. The worker logs at `--log-level` (INFO, the default of a real worker) to
this process's stderr, the way `taskflow worker` does: redirect it to a file or /dev/null.
`--cprofile` prints the functions that took the most time as well; the profiler slows the
worker several times, so read its figures as shares, not as speed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
from collections.abc import Sequence

from benchmarks.deploy import Deployment, in_own_database
from benchmarks.measure import CpuWindow, Store
from taskflow.config import LOG_LEVELS
from taskflow.containers import close_container
from taskflow.domain.services import SubmitTask
from taskflow.entrypoints.runtime import build_worker, worker_options
from taskflow.entrypoints.startup import prepare, tune_gc_for_serving

POLL_SECONDS = 0.5  # how often the store is asked how many tasks are done: rarely, it costs


async def drain(
    deploy: Deployment, tasks: int, concurrency: int, profile: bool, log_level: str
) -> str:
    container = prepare("server", {**deploy.env(), "TASKFLOW_LOG_LEVEL": log_level})
    service = container.task_service()
    for start in range(0, tasks, 500):
        count = min(500, tasks - start)
        await service.submit_many([SubmitTask(type="debug.echo", payload={}) for _ in range(count)])
    await container.queue().mark_intact()  # all is pushed: the sweep has nothing to refill
    options = worker_options(container.settings(), queues=["default"], concurrency=concurrency)
    worker = build_worker(container, options)
    store = await Store.open(deploy.dsn)
    stop = asyncio.Event()

    async def watch() -> None:
        await store.wait_success(tasks, interval=POLL_SECONDS)
        stop.set()

    tune_gc_for_serving()
    window = CpuWindow(servers=True)
    window.start([os.getpid()])
    started = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    try:
        await asyncio.gather(worker.run_forever(stop), watch())
        # Read before the connections close: a server process that ends takes its CPU along.
        wall = time.perf_counter() - started
        cpu = window.stop()
    finally:
        if profiler:
            profiler.disable()
        await store.close()
        await close_container(container)
    lines = [
        f"{tasks:,} tasks in {wall:.2f} s: {tasks / wall:,.0f}/s at concurrency {concurrency}, "
        f"logging at {log_level}",
        f"CPU per task: this process {cpu['procs_seconds'] / tasks * 1e6:.1f} µs"
        + "".join(
            f", {name} {cpu[name] / tasks * 1e6:.1f} µs"
            for name in ("PostgreSQL", "Redis")
            if name in cpu
        )
        + " (PostgreSQL's and Redis's: every local server process, so other work shows too)",
    ]
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(40)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_drain", description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks to drain (20000)")
    parser.add_argument("--concurrency", type=int, default=16, help="worker concurrency (16)")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="the worker's TASKFLOW_LOG_LEVEL (INFO); the logs go to stderr",
    )
    parser.add_argument("--cprofile", action="store_true", help="print a cProfile of the drain")
    args = parser.parse_args(argv)
    print(
        in_own_database(
            lambda deploy: drain(
                deploy, args.tasks, args.concurrency, args.cprofile, args.log_level
            )
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
