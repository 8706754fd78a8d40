"""A worker's resident memory over a long drain, in this process.

    .venv/bin/python -m benchmarks.rss_soak [--rounds 25] [--chunk 20000] [--env TASKFLOW_X=V]

Like `benchmarks.profile_drain`, it works in a database and Redis prefix of its own and
removes them at the end. Each round submits ``--chunk`` no-op tasks, lets a real `Worker`
(default settings, logs at WARNING so that nothing but the worker allocates) drain them, and
prints this process's VmRSS. A leak keeps rising round after round; the allocator's arenas
filling with larger buffers rise a few MiB and then stay.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from benchmarks.deploy import Deployment, in_own_database
from benchmarks.measure import Store
from taskflow.containers import close_container
from taskflow.domain.services import SubmitTask
from taskflow.entrypoints.runtime import build_worker, worker_options
from taskflow.entrypoints.startup import prepare, tune_gc_for_serving

BATCH = 500


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def soak(deploy: Deployment, rounds: int, chunk: int, settings: dict[str, str]) -> None:
    container = prepare("server", {**deploy.env(), "TASKFLOW_LOG_LEVEL": "WARNING", **settings})
    service = container.task_service()
    await container.queue().mark_intact()
    options = worker_options(container.settings(), queues=["default"], concurrency=None)
    worker = build_worker(container, options)
    store = await Store.open(deploy.dsn)
    stop = asyncio.Event()
    tune_gc_for_serving()
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        for round_ in range(1, rounds + 1):
            for _ in range(chunk // BATCH):
                tasks = [SubmitTask(type="debug.echo", payload={}) for _ in range(BATCH)]
                await service.submit_many(tasks)
            await store.wait_success(round_ * (chunk // BATCH) * BATCH, interval=0.2)
            print(f"after {round_ * chunk:>9,} tasks: VmRSS {rss_mib():.1f} MiB", flush=True)
    finally:
        stop.set()
        await running
        await store.close()
        await close_container(container)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rss_soak", description=__doc__)
    parser.add_argument("--rounds", type=int, default=25, help="rounds (25)")
    parser.add_argument("--chunk", type=int, default=20_000, help="tasks per round (20000)")
    parser.add_argument("--env", action="append", default=[], metavar="TASKFLOW_X=V")
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.env)
    in_own_database(lambda deploy: soak(deploy, args.rounds, args.chunk, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
