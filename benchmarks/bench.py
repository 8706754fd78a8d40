"""What every phase shares: the parameters, a phase's result, and the deployment with its store.

Each phase starts from empty tables and Redis keys, with no process running, starts the
processes it needs and answers {row key: Result}.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.client import Connection, batch_body, single_body
from benchmarks.deploy import HOST, Deployment, Proc, is_local
from benchmarks.load import steady, submit_all
from benchmarks.measure import Store, percentile


@dataclass(frozen=True)
class Params:
    submit_seconds: float = 10.0
    warmup_seconds: float = 1.0
    client_processes: int = 2
    client_connections: int = 32  # per client process: 64 clients in all
    batch_size: int = 500
    batch_connections: int = 4  # per client process
    drain_tasks: int = 20_000
    latency_rate: float = 100.0
    latency_seconds: float = 10.0
    lateness_rate: float = 20.0
    lateness_seconds: float = 10.0  # of each way a task gets a future run_at
    released_tasks: int = 8
    memory_checkpoints: tuple[int, int] = (10_000, 100_000)
    memory_chunk: int = 2_000
    apis: int = 1
    floor_drain_tasks: int = 20_000
    floor_pickup_tasks: int = 1_000  # at 100/s, as many as the latency phase sends

    @classmethod
    def smoke(cls) -> Params:
        return cls(
            submit_seconds=2.0,
            warmup_seconds=0.5,
            drain_tasks=300,
            latency_seconds=2.0,
            lateness_seconds=2.0,
            memory_checkpoints=(200, 1_000),
            memory_chunk=100,
            floor_drain_tasks=2_000,
            floor_pickup_tasks=100,
        )

    def labels(self) -> dict[str, str]:
        """What the rows' names say, e.g. "drain {drain} no-op"."""
        return {
            "clients": str(self.client_processes * self.client_connections),
            "batch": str(self.batch_size),
            "drain": f"{self.drain_tasks:,}",
            "rate": f"{self.latency_rate:g}",
            "small": f"{self.memory_checkpoints[0]:,}",
            "large": f"{self.memory_checkpoints[1]:,}",
            "floor_drain": f"{self.floor_drain_tasks:,}",
            "floor_pickup": f"{self.floor_pickup_tasks:,}",
        }

    def but(self, **changes: Any) -> Params:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Result:
    value: float | str  # a number, or "n/a"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


Results = dict[str, Result]


@dataclass
class Bench:
    deploy: Deployment
    store: Store
    params: Params
    batch_endpoint: bool | None = None
    batch_answer: str = ""

    @property
    def local_servers(self) -> bool:
        """PostgreSQL and Redis both run on this host, so their CPU can be read from /proc."""
        return is_local(self.deploy.database_host) and is_local(self.deploy.redis_host)

    async def fresh(self, phase: str) -> None:
        self.deploy.phase = phase
        await self.deploy.reset(self.store)

    async def has_batch_endpoint(self, port: int) -> bool:
        """POST /api/tasks/batch with no tasks: 404/405 mean there is no such endpoint (a 400
        for the empty list means there is). Creates nothing."""
        if self.batch_endpoint is None:
            connection = Connection(HOST, port, self.deploy.headers)
            try:
                status, _ = await connection.request("POST", "/api/tasks/batch", b'{"tasks": []}')
            finally:
                connection.close()
            self.batch_endpoint = status not in (404, 405)
            self.batch_answer = f"POST /api/tasks/batch answered {status}"
        return self.batch_endpoint

    async def enqueue(self, ports: Sequence[int], count: int) -> str:
        """Submit ``count`` no-op tasks, in batches when the API has the endpoint."""
        before = await self.store.count()
        size = self.params.batch_size
        headers = self.deploy.headers
        if await self.has_batch_endpoint(ports[0]):
            bodies = [batch_body(size)] * (count // size)
            if count % size:
                bodies.append(batch_body(count % size))
            await submit_all(HOST, ports, "/api/tasks/batch", bodies, 4, headers)
            how = f"batches of up to {size}"
        else:
            await submit_all(HOST, ports, "/api/tasks", [single_body()] * count, 32, headers)
            how = "single POSTs"
        stored = await self.store.count() - before
        if stored != count:
            raise RuntimeError(f"enqueued {count} tasks but {stored} rows appeared")
        return how


Phase = Callable[[Bench], Awaitable[Results]]


def ports_of(apis: list[Proc]) -> tuple[int, ...]:
    return tuple(p.port for p in apis if p.port is not None)


def alive(procs: list[Proc]) -> Callable[[], None]:
    """A check for `Store.wait_success`: fails as soon as one of ``procs`` has exited."""

    def check() -> None:
        for proc in procs:
            proc.check_alive()

    return check


def p50_p99(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    return f"{percentile(samples, 50):.1f} / {percentile(samples, 99):.1f} ms"


async def warm_up(bench: Bench, port: int, procs: list[Proc]) -> int:
    """20 no-op tasks at 20/s through the API at ``port``, all finished by the workers, then a
    second of rest: the workers are up, warm and idle. Answers how many tasks that made."""
    bodies = [single_body()] * 20
    warm = await steady(HOST, port, "/api/tasks", bodies, rate=20, headers=bench.deploy.headers)
    warm.check()
    await bench.store.wait_success(len(warm.ids), check=alive(procs))
    await asyncio.sleep(1.0)
    return len(warm.ids)
