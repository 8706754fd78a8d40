"""CPU per single submission inside the API, without sockets, PostgreSQL or Redis.

`POST /api/tasks` goes straight into the API's ASGI application, built on the in-memory
store and queue, with garbage collection tuned as `taskflow api` tunes it. What it reports,
CPU microseconds per request, is the API's own share of the submit path: the number to
compare when a change touches the HTTP layer. Compare builds in one sitting, alternating
(`PYTHONPATH=<other build>/src` runs another build's code through this same script).

    .venv/bin/python -m benchmarks.asgi_submit [--requests 20000] [--runs 3] [--with-key]

``--with-key``: authentication on (one key in the in-memory key store) and each request
sending it as ``Authorization: Bearer``: compare with a run without, to see what the key check
costs a submission (decision 30). ``--compare-key`` runs both in one process, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from dependency_injector import providers

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import build_container
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.startup import load_registry, tune_gc_for_serving

ONE = {"type": "debug.echo", "payload": {"n": 1}}


@dataclass
class Load:
    """What every request sends: one submission, or a batch (``use_batches``)."""

    path: str = "/api/tasks"
    body: bytes = json.dumps(ONE).encode()
    tasks: int = 1  # in each request

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"user-agent", b"taskflow-bench"),
        ]

    def use_batches(self, size: int) -> None:
        self.path, self.tasks = "/api/tasks/batch", size
        self.body = json.dumps({"tasks": [ONE] * size}).encode()

    @property
    def warmup(self) -> int:
        """Requests before the measured ones: caches and first-call paths, 500 tasks or more."""
        return max(500 // self.tasks, 2)


LOAD = Load()


async def build_app(*, with_key: bool = False) -> tuple[Any, list[tuple[bytes, bytes]]]:
    """The app, and the headers of a submission to it."""
    registry = load_registry(None, debug_tasks=True)
    container = build_container(Settings(redis_url=None), registry)
    container.repository.override(providers.Singleton(InMemoryTaskRepository, container.clock))
    container.queue.override(providers.Singleton(InMemoryTaskQueue, container.clock))
    headers = LOAD.headers()
    if with_key:
        from taskflow.domain.keys import Scope  # here: a build before keys runs this script too

        keys = container.key_service()
        _, secret = await keys.create(
            name="bench", scopes=frozenset({Scope.SUBMIT}), tenant="default"
        )
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    return create_app(container), headers


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": LOAD.path,
        "raw_path": LOAD.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def submit(app: Any, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": LOAD.body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope(LOAD.headers() if headers is None else headers), receive, send)
    return status


async def lifespan(app: Any, phase: str) -> None:
    sent = False

    async def receive() -> dict[str, str]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": f"lifespan.{phase}"}

    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith(f"lifespan.{phase}."):
            done.set()

    job = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await done.wait()
    if phase == "shutdown":
        await job
    else:
        job.add_done_callback(lambda _: None)


async def run(requests: int, *, with_key: bool = False) -> float:
    app, headers = await build_app(with_key=with_key)
    await lifespan(app, "startup")
    for _ in range(LOAD.warmup):  # warm up: caches, first-call paths
        assert await submit(app, headers) == 202
    tune_gc_for_serving()
    began = time.process_time()
    for _ in range(requests):
        await submit(app, headers)
    spent = time.process_time() - began
    gc.unfreeze()
    return spent / requests * 1e6


async def compare_key(requests: int, rounds: int) -> tuple[float, float]:
    """Best CPU per submit without and with a key, the two apps alternating in one process
    (``rounds`` slices of ``requests`` each): what the key check costs, with less of the
    machine's noise than whole runs apart."""
    apps = [await build_app(with_key=False), await build_app(with_key=True)]
    for app, headers in apps:
        await lifespan(app, "startup")
        for _ in range(LOAD.warmup):
            assert await submit(app, headers) == 202
    tune_gc_for_serving()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, (app, headers) in enumerate(apps):
            began = time.process_time()
            for _ in range(requests):
                await submit(app, headers)
            best[index] = min(best[index], (time.process_time() - began) / requests * 1e6)
    gc.unfreeze()
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--with-key", action="store_true", help="authentication on, each request sending a key"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="batches of this many tasks; figures per task"
    )
    parser.add_argument(
        "--compare-key",
        action="store_true",
        help="without and with a key, alternating in one process; prints both and their ratio",
    )
    args = parser.parse_args()
    per = "submit"
    if args.batch > 0:
        LOAD.use_batches(args.batch)
        per = "task"
    if args.compare_key:
        without, keyed = asyncio.run(compare_key(args.requests // 5, args.runs * 5))
        print(
            f"CPU per submit, best: without a key {without:.1f} µs, with {keyed:.1f} µs "
            f"({keyed / without:.3f} of without)"
        )
        return
    runs = [
        asyncio.run(run(args.requests, with_key=args.with_key)) / LOAD.tasks
        for _ in range(args.runs)
    ]
    shown = " · ".join(f"{r:.1f}" for r in runs)
    print(
        f"CPU per {per}: median {statistics.median(runs):.2f} µs, "
        f"best {min(runs):.1f} µs (runs: {shown})"
    )


if __name__ == "__main__":
    main()
