"""The measurements. Each phase starts from empty tables and Redis keys, with no process running,
starts the processes it needs and answers {row key: Result}."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.client import Connection, batch_body, single_body
from benchmarks.deploy import HOST, Deployment, Proc, is_local
from benchmarks.load import ClosedLoopSpec, LoadResult, closed_loop, steady, submit_all
from benchmarks.measure import KIB_PER_MIB, SERVERS, CpuWindow, Store, percentile, proc_status_kib


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
    memory_checkpoints: tuple[int, int] = (10_000, 100_000)
    memory_chunk: int = 2_000
    apis: int = 1

    @classmethod
    def smoke(cls) -> Params:
        return cls(
            submit_seconds=2.0,
            warmup_seconds=0.5,
            drain_tasks=300,
            latency_seconds=2.0,
            memory_checkpoints=(200, 1_000),
            memory_chunk=100,
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
            connection = Connection(HOST, port)
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
        if await self.has_batch_endpoint(ports[0]):
            bodies = [batch_body(size)] * (count // size)
            if count % size:
                bodies.append(batch_body(count % size))
            await submit_all(HOST, ports, "/api/tasks/batch", bodies, connections=4)
            how = f"batches of up to {size}"
        else:
            await submit_all(HOST, ports, "/api/tasks", [single_body()] * count, connections=32)
            how = "single POSTs"
        stored = await self.store.count() - before
        if stored != count:
            raise RuntimeError(f"enqueued {count} tasks but {stored} rows appeared")
        return how


def _ports(apis: list[Proc]) -> tuple[int, ...]:
    return tuple(p.port for p in apis if p.port is not None)


def _alive(procs: list[Proc]) -> Callable[[], None]:
    def check() -> None:
        for proc in procs:
            proc.check_alive()

    return check


def _ms(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    return f"{percentile(samples, 50):.1f} / {percentile(samples, 99):.1f} ms"


# -- 1 and 2: HTTP submit -----------------------------------------------------------------------


async def _submit_load(
    p: Params, apis: list[Proc], path: str, body: bytes, connections: int
) -> LoadResult:
    """The client processes POST ``body`` to ``path`` back to back over the submit window."""
    spec = ClosedLoopSpec(
        HOST,
        _ports(apis),
        path,
        body,
        connections,
        p.warmup_seconds,
        p.submit_seconds,
        tuple(a.pid for a in apis),
    )
    load = await closed_loop(spec, p.client_processes)
    if load.ok == 0:
        raise RuntimeError(f"no 202 in the window; problems: {load.problems()}")
    return load


async def submit_single(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("submit")
    apis = await bench.deploy.start_apis(p.apis)
    load = await _submit_load(p, apis, "/api/tasks", single_body(), p.client_connections)
    notes = (
        f"api x{p.apis}, no worker; {p.client_processes} client processes x "
        f"{p.client_connections} keep-alive connections, {p.submit_seconds:g} s after "
        f"{p.warmup_seconds:g} s warm-up; 202s only; latency p50/p99 {_ms(load.latencies_ms)}; "
        f"errors: {load.problems()}; {load.cpu(p.submit_seconds)}"
    )
    extra = {"accepted": load.ok, "errors": load.problems()}
    return {"submit_single": Result(load.ok / p.submit_seconds, notes, extra)}


async def submit_batch(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("batch")
    apis = await bench.deploy.start_apis(p.apis)
    if not await bench.has_batch_endpoint(apis[0].port or 0):
        return {"submit_batch": Result("n/a", f"no batch endpoint ({bench.batch_answer})")}
    load = await _submit_load(
        p, apis, "/api/tasks/batch", batch_body(p.batch_size), p.batch_connections
    )
    notes = (
        f"api x{p.apis}, no worker; {p.client_processes} client processes x "
        f"{p.batch_connections} connections, {p.batch_size} tasks a request, "
        f"{load.ok / p.submit_seconds:.1f} requests/s, {p.submit_seconds:g} s; "
        f"request latency p50/p99 {_ms(load.latencies_ms)}; errors: {load.problems()}; "
        f"{load.cpu(p.submit_seconds)}"
    )
    extra = {"accepted_requests": load.ok, "errors": load.problems()}
    return {"submit_batch": Result(load.ok * p.batch_size / p.submit_seconds, notes, extra)}


# -- 3: drain -------------------------------------------------------------------------------


async def drain(bench: Bench, workers: int) -> Results:
    p = bench.params
    n = p.drain_tasks
    await bench.fresh(f"drain{workers}")
    apis = await bench.deploy.start_apis(p.apis)
    how = await bench.enqueue(_ports(apis), n)
    await bench.deploy.stop(apis)  # the workers have the machine to themselves
    usage = CpuWindow()
    usage.start()
    started = time.monotonic()
    procs = bench.deploy.start_workers(workers)
    pids = [proc.pid for proc in procs]
    usage.add(pids)
    # The workers' CPU per task is counted from the first SUCCESS on, without their start-up.
    await bench.store.wait_success(1, check=_alive(procs), interval=0.01)
    steady = CpuWindow(servers=bench.local_servers)
    steady.start(pids)
    counted = n - await bench.store.count("SUCCESS")
    done = await bench.store.wait_success(n, check=_alive(procs))
    wall = done - started
    used = usage.stop()
    cpu = steady.stop()
    per_task = cpu["procs_seconds"] / max(1, counted) * 1e6
    servers = "".join(
        f", {name} {cpu[name] / max(1, counted) * 1e6:.0f} µs"
        for name in SERVERS.values()
        if name in cpu
    )
    span = await bench.store.drain_span()
    await bench.deploy.stop(procs)
    setup = (
        f"{n:,} no-op tasks queued ({how}) before the start, api stopped; worker x{workers} "
        f"using {used['procs']:.2f} cores ({per_task:.0f} µs of CPU per task after start-up"
        f"{servers}), "
        f"machine {used['machine']:.2f} of {os.cpu_count()} cores busy"
    )
    return {
        f"drain_{workers}_wall": Result(
            n / wall,
            f"{setup}; {wall:.2f} s from starting the worker processes to the last SUCCESS "
            "(polled every 50 ms), start-up included",
            {"seconds": wall, "cpu_us_per_task": per_task},
        ),
        f"drain_{workers}_db": Result(
            n / span,
            f"{setup}; the tasks' own timestamps: max(finished_at) - min(started_at) = "
            f"{span:.2f} s, start-up excluded",
            {"seconds": span, "cpu_us_per_task": per_task},
        ),
    }


def _drain_with(workers: int) -> Phase:
    async def phase(bench: Bench) -> Results:
        return await drain(bench, workers)

    return phase


# -- 4: latency -----------------------------------------------------------------------------


async def latency(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("latency")
    [api] = await bench.deploy.start_apis(1)
    procs = bench.deploy.start_workers(1)
    port = api.port or 0
    body = single_body()
    warm = await steady(HOST, port, "/api/tasks", body, rate=20, duration=1.0)  # worker is up
    await bench.store.wait_success(len(warm.ids), check=_alive(procs))
    await asyncio.sleep(1.0)  # and idle again
    sent = await steady(
        HOST, port, "/api/tasks", body, rate=p.latency_rate, duration=p.latency_seconds
    )
    if sent.statuses or not sent.ids:
        raise RuntimeError(f"answers other than 202: {dict(sent.statuses)}")
    await bench.store.wait_success(len(warm.ids) + len(sent.ids), check=_alive(procs))
    pickup, total = await bench.store.latencies_ms(sent.ids)
    notes = (
        f"api x1, worker x1 idle; 1 client (4 connections) at {p.latency_rate:g} tasks/s for "
        f"{p.latency_seconds:g} s (open loop, {sent.late} sends late by >5 ms); "
        f"{len(pickup)} tasks"
    )
    what_pickup = "started_at - created_at"
    what_total = "finished_at - created_at"
    return {
        "pickup_p50": Result(percentile(pickup, 50), f"{what_pickup}; {notes}"),
        "pickup_p99": Result(percentile(pickup, 99), f"{what_pickup}; {notes}"),
        "e2e_p50": Result(percentile(total, 50), f"{what_total}; {notes}"),
        "e2e_p99": Result(percentile(total, 99), f"{what_total}; {notes}"),
    }


# -- 5: memory ------------------------------------------------------------------------------


async def memory(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("memory")
    apis = await bench.deploy.start_apis(p.apis)
    procs = bench.deploy.start_workers(1)
    worker = procs[0]
    submitted, rss = 0, {}
    started = time.monotonic()
    how = ""
    for checkpoint in p.memory_checkpoints:
        while submitted < checkpoint:
            count = min(p.memory_chunk, checkpoint - submitted)
            how = await bench.enqueue(_ports(apis), count)
            submitted += count
            # keep at most about two chunks queued
            await bench.store.wait_success(submitted - p.memory_chunk, check=_alive(procs))
        await bench.store.wait_success(checkpoint, check=_alive(procs))
        await asyncio.sleep(0.5)
        kib = proc_status_kib(worker.pid, "VmRSS")
        if kib is None:
            raise RuntimeError("the worker is gone")
        rss[checkpoint] = kib / KIB_PER_MIB
    elapsed = time.monotonic() - started
    small, large = p.memory_checkpoints
    growth = (rss[large] - rss[small]) / rss[small] * 100.0
    setup = (
        f"one worker process kept running, idle when read; tasks enqueued ({how}) "
        f"{p.memory_chunk:,} at a time, at most ~2 chunks queued; api x{p.apis} running"
    )
    return {
        "worker_rss_small": Result(rss[small], f"VmRSS after {small:,} tasks; {setup}"),
        "worker_rss_large": Result(
            rss[large],
            f"VmRSS after {large:,} tasks: {growth:+.1f}% vs after {small:,} "
            f"({large / elapsed:,.0f} tasks/s through the phase)",
            {"growth_percent": growth},
        ),
    }


#: Worker processes of the drain phases; drain1 and drain2 run by default, drain3 and drain4 on
#: request (`--phases drain1,drain2,drain3,drain4` shows how the drain scales).
DRAIN_WORKERS = (1, 2, 3, 4)
OPTIONAL_PHASES = ("drain3", "drain4")


def _workers(n: int) -> str:
    return "1 worker" if n == 1 else f"{n} workers"


def layouts(p: Params) -> dict[str, str]:
    """Which processes each phase runs."""
    submit = f"api x{p.apis}, no worker; load generator: {p.client_processes} client processes x"
    enqueue = f"api x{p.apis} to enqueue, stopped before the workers start"
    return {
        "submit": f"{submit} {p.client_connections} connections",
        "batch": f"{submit} {p.batch_connections} connections",
        **{f"drain{n}": f"worker x{n}; {enqueue}" for n in DRAIN_WORKERS},
        "latency": "api x1, worker x1; this process is the client (4 connections)",
        "memory": f"api x{p.apis}, worker x1; this process enqueues",
    }


Phase = Callable[[Bench], Awaitable[Results]]

# name, its rows (key, label with Params.labels() fields, unit), function, and whether it is
# cheap enough to --repeat
PHASES: list[tuple[str, list[tuple[str, str, str]], Phase, bool]] = [
    (
        "submit",
        [("submit_single", "HTTP submit, single POST, {clients} clients", "tasks/s")],
        submit_single,
        True,
    ),
    (
        "batch",
        [("submit_batch", "HTTP submit, batches of {batch}", "tasks/s")],
        submit_batch,
        True,
    ),
    *(
        (
            f"drain{n}",
            [
                (f"drain_{n}_wall", f"drain {{drain}} no-op, {_workers(n)} (wall)", "tasks/s"),
                (
                    f"drain_{n}_db",
                    f"drain {{drain}} no-op, {_workers(n)} (task timestamps)",
                    "tasks/s",
                ),
            ],
            _drain_with(n),
            True,
        )
        for n in DRAIN_WORKERS
    ),
    (
        "latency",
        [
            ("pickup_p50", "pickup latency p50 at {rate}/s", "ms"),
            ("pickup_p99", "pickup latency p99 at {rate}/s", "ms"),
            ("e2e_p50", "submit → SUCCESS p50 at {rate}/s", "ms"),
            ("e2e_p99", "submit → SUCCESS p99 at {rate}/s", "ms"),
        ],
        latency,
        True,
    ),
    (
        "memory",
        [
            ("worker_rss_small", "worker RSS after {small} tasks", "MiB"),
            ("worker_rss_large", "worker RSS after {large} tasks", "MiB"),
        ],
        memory,
        False,
    ),
]
# Rows computed at the end from every process's VmHWM, read just before it was stopped.
PEAK_ROWS = [
    ("api_peak_rss", "API peak RSS", "MiB"),
    ("worker_peak_rss", "worker peak RSS", "MiB"),
]
