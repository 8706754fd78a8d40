"""The measurements, one function per phase, and the rows each one fills (`PHASES`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from benchmarks.bench import (
    Bench,
    Params,
    Phase,
    Result,
    Results,
    alive,
    p50_p99,
    ports_of,
    warm_up,
)
from benchmarks.client import batch_body, single_body
from benchmarks.deploy import HOST, Proc
from benchmarks.lateness import LATENESS_ROWS, lateness
from benchmarks.load import ClosedLoopSpec, LoadResult, closed_loop, steady
from benchmarks.measure import KIB_PER_MIB, SERVERS, CpuWindow, percentile, proc_status_kib

# -- 1 and 2: HTTP submit -----------------------------------------------------------------------


async def submit_load(
    bench: Bench, apis: list[Proc], path: str, body: bytes, connections: int
) -> LoadResult:
    """The client processes POST ``body`` to ``path`` back to back over the submit window."""
    p = bench.params
    spec = ClosedLoopSpec(
        HOST,
        ports_of(apis),
        path,
        body,
        connections,
        p.warmup_seconds,
        p.submit_seconds,
        tuple(a.pid for a in apis),
        bench.deploy.headers,
    )
    load = await closed_loop(spec, p.client_processes)
    if load.ok == 0:
        raise RuntimeError(f"no 202 in the window; problems: {load.problems()}")
    return load


async def submit_single(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("submit")
    apis = await bench.deploy.start_apis(p.apis)
    load = await submit_load(bench, apis, "/api/tasks", single_body(), p.client_connections)
    notes = (
        f"api x{p.apis}, no worker; {p.client_processes} client processes x "
        f"{p.client_connections} keep-alive connections, {p.submit_seconds:g} s after "
        f"{p.warmup_seconds:g} s warm-up; 202s only; latency p50/p99 {p50_p99(load.latencies_ms)}; "
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
    load = await submit_load(
        bench, apis, "/api/tasks/batch", batch_body(p.batch_size), p.batch_connections
    )
    notes = (
        f"api x{p.apis}, no worker; {p.client_processes} client processes x "
        f"{p.batch_connections} connections, {p.batch_size} tasks a request, "
        f"{load.ok / p.submit_seconds:.1f} requests/s, {p.submit_seconds:g} s; "
        f"request latency p50/p99 {p50_p99(load.latencies_ms)}; errors: {load.problems()}; "
        f"{load.cpu(p.submit_seconds)}"
    )
    extra = {"accepted_requests": load.ok, "errors": load.problems()}
    return {"submit_batch": Result(load.ok * p.batch_size / p.submit_seconds, notes, extra)}


# -- 3: drain -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    """A drain phase: its worker processes, the prefix of its rows' keys (``<key>_wall`` and
    ``<key>_db``) and the settings its workers get on top of the run's."""

    workers: int
    key: str
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return self.key.replace("_", "", 1)  # drain_2 -> drain2, drain_2_quiet -> drain2_quiet

    async def __call__(self, bench: Bench) -> Results:
        p = bench.params
        n = p.drain_tasks
        await bench.fresh(self.phase)
        apis = await bench.deploy.start_apis(p.apis)
        how = await bench.enqueue(ports_of(apis), n)
        await bench.deploy.stop(apis)  # the workers have the machine to themselves
        usage = CpuWindow()
        usage.start()
        started = time.monotonic()
        procs = bench.deploy.start_workers(self.workers, self.settings)
        pids = [proc.pid for proc in procs]
        usage.add(pids)
        # The workers' CPU per task is counted from the first SUCCESS on, without start-up.
        await bench.store.wait_success(1, check=alive(procs), interval=0.01)
        steady = CpuWindow(servers=bench.local_servers)
        steady.start(pids)
        counted = n - await bench.store.count("SUCCESS")
        done = await bench.store.wait_success(n, check=alive(procs))
        wall = done - started
        used = usage.stop()
        cpu = steady.stop()
        span = await bench.store.drain_span()
        await bench.deploy.stop(procs)
        per_task = cpu["procs_seconds"] / max(1, counted) * 1e6
        servers = "".join(
            f", {name} {cpu[name] / max(1, counted) * 1e6:.0f} µs"
            for name in SERVERS.values()
            if name in cpu
        )
        setup = (
            f"{n:,} no-op tasks queued ({how}) before the start, api stopped; worker "
            f"x{self.workers}{''.join(f' with {k}={v}' for k, v in self.settings.items())} "
            f"using {used['procs']:.2f} cores ({per_task:.0f} µs of CPU per task after start-up"
            f"{servers}), machine {used['machine']:.2f} of {os.cpu_count()} cores busy"
        )
        extra = {"cpu_us_per_task": per_task}
        return {
            f"{self.key}_wall": Result(
                n / wall,
                f"{setup}; {wall:.2f} s from starting the worker processes to the last SUCCESS "
                "(polled every 50 ms), start-up included",
                {"seconds": wall, **extra},
            ),
            f"{self.key}_db": Result(
                n / span,
                f"{setup}; the tasks' own timestamps: max(finished_at) - min(started_at) = "
                f"{span:.2f} s, start-up excluded",
                {"seconds": span, **extra},
            ),
        }


# -- 4: latency -----------------------------------------------------------------------------


async def latency(bench: Bench) -> Results:
    p = bench.params
    await bench.fresh("latency")
    [api] = await bench.deploy.start_apis(1)
    procs = bench.deploy.start_workers(1)
    port = api.port or 0
    warm = await warm_up(bench, port, procs)
    count = round(p.latency_rate * p.latency_seconds)
    sent = await steady(
        HOST,
        port,
        "/api/tasks",
        [single_body()] * count,
        rate=p.latency_rate,
        headers=bench.deploy.headers,
    )
    sent.check()
    await bench.store.wait_success(warm + len(sent.ids), check=alive(procs))
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
            how = await bench.enqueue(ports_of(apis), count)
            submitted += count
            # keep at most about two chunks queued
            await bench.store.wait_success(submitted - p.memory_chunk, check=alive(procs))
        await bench.store.wait_success(checkpoint, check=alive(procs))
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


#: The settings of the one phase that does not run the shipped defaults: the same drain as
#: drain2 with the lifecycle logs off, so that their cost shows in the same run.
QUIET = {"TASKFLOW_LOG_LEVEL": "WARNING"}
#: drain1, drain2 and drain2_quiet run by default, drain3 and drain4 on request
#: (`--phases drain1,drain2,drain3,drain4` shows how the drain scales).
DRAINS = (
    Drain(1, "drain_1"),
    Drain(2, "drain_2"),
    Drain(2, "drain_2_quiet", QUIET),
    Drain(3, "drain_3"),
    Drain(4, "drain_4"),
)
OPTIONAL_PHASES = ("drain3", "drain4")


def _workers(n: int) -> str:
    return "1 worker" if n == 1 else f"{n} workers"


def _drain_rows(drain: Drain) -> list[tuple[str, str, str]]:
    label = f"drain {{drain}} no-op, {_workers(drain.workers)}"
    if drain.settings:  # one row, beside the default's task-timestamps row
        settings = " ".join(f"{k}={v}" for k, v in drain.settings.items())
        return [(f"{drain.key}_db", f"{label}, {settings} (not the default)", "tasks/s")]
    return [
        (f"{drain.key}_wall", f"{label} (wall)", "tasks/s"),
        (f"{drain.key}_db", f"{label} (task timestamps)", "tasks/s"),
    ]


def layouts(p: Params) -> dict[str, str]:
    """Which processes each phase runs."""
    submit = f"api x{p.apis}, no worker; load generator: {p.client_processes} client processes x"
    enqueue = f"api x{p.apis} to enqueue, stopped before the workers start"
    return {
        "submit": f"{submit} {p.client_connections} connections",
        "batch": f"{submit} {p.batch_connections} connections",
        **{
            d.phase: f"worker x{d.workers}"
            + "".join(f" with {k}={v}" for k, v in d.settings.items())
            + f"; {enqueue}"
            for d in DRAINS
        },
        "latency": "api x1, worker x1; this process is the client (4 connections)",
        "lateness": "api x1, worker x1 (and a second worker, stopped to hand its tasks back); "
        "this process is the client",
        "memory": f"api x{p.apis}, worker x1; this process enqueues",
    }


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
    *((d.phase, _drain_rows(d), d, True) for d in DRAINS),
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
    ("lateness", LATENESS_ROWS, lateness, True),
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
