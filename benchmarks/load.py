"""Load generators.

- `closed_loop`: several client PROCESSES (spawned), each with an asyncio loop driving N
  keep-alive connections that send the same request back to back for a fixed time. Only the
  answers completed inside the measured window count; a warm-up comes before it.
- `submit_all`: enqueue a known list of request bodies from this process (not measured).
- `steady`: one client sending at a fixed rate (open loop), keeping the ids it got.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import signal
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.client import NETWORK_ERRORS, Connection, Headers
from benchmarks.measure import CpuWindow


@dataclass(frozen=True)
class ClosedLoopSpec:
    host: str
    ports: tuple[int, ...]
    path: str
    body: bytes
    connections: int  # per process
    warmup: float
    duration: float
    server_pids: tuple[int, ...] = ()  # whose CPU use in the window to report
    headers: Headers = ()  # of every request: the API key with --auth


@dataclass
class LoadResult:
    ok: int = 0  # 202 answers completed inside the window
    statuses: Counter[int] = field(default_factory=Counter)  # other answers inside the window
    errors: Counter[str] = field(default_factory=Counter)  # network errors inside the window
    unfinished: int = 0  # requests still in flight well after the window, abandoned
    latencies_ms: list[float] = field(default_factory=list)  # of the counted 202s
    client_cpu_seconds: float = 0.0  # used by the client processes inside the window
    server_cores: float = 0.0  # cores used by server_pids inside the window
    machine_cores: float = 0.0  # cores of the machine busy inside the window

    def merge(self, other: LoadResult) -> None:
        self.ok += other.ok
        self.client_cpu_seconds += other.client_cpu_seconds
        self.server_cores = max(self.server_cores, other.server_cores)
        self.machine_cores = max(self.machine_cores, other.machine_cores)
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.unfinished += other.unfinished
        self.latencies_ms.extend(other.latencies_ms)

    def problems(self) -> str:
        parts = [f"{n}x HTTP {s}" for s, n in sorted(self.statuses.items())]
        parts += [f"{n}x {e}" for e, n in sorted(self.errors.items())]
        if self.unfinished:
            parts.append(f"{self.unfinished} unfinished")
        return ", ".join(parts) or "none"

    def cpu(self, duration: float) -> str:
        return (
            f"CPU in the window: api {self.server_cores:.2f} cores, load generator "
            f"{self.client_cpu_seconds / duration:.2f} cores, machine {self.machine_cores:.2f} "
            f"of {os.cpu_count()} cores busy"
        )


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- the client processes ---------------------------------------------------------------------


def _client_process(spec: ClosedLoopSpec, index: int, barrier: Any, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; Ctrl-C is for it
    try:
        result = _run(_drive(spec, index, barrier))
        results.put((index, result, None))
    except BaseException as exc:
        results.put((index, None, f"client process {index}: {exc!r}"))


async def _drive(spec: ClosedLoopSpec, index: int, barrier: Any) -> LoadResult:
    connections = []
    try:
        for n in range(spec.connections):
            port = spec.ports[(index * spec.connections + n) % len(spec.ports)]
            connection = Connection(spec.host, port, spec.headers)
            await connection.open()
            connections.append(connection)
    except BaseException:
        barrier.abort()
        raise
    barrier.wait()  # every process is connected: go together
    begin = time.monotonic() + spec.warmup
    end = begin + spec.duration
    result = LoadResult()
    window = asyncio.create_task(_window(spec, index, begin, end, result))
    tasks = [asyncio.create_task(_loop(c, spec, begin, end, result)) for c in connections]
    _, pending = await asyncio.wait(tasks, timeout=end - time.monotonic() + 10.0)
    for task in pending:
        task.cancel()
    result.unfinished = len(pending)
    await window
    for connection in connections:
        connection.close()
    return result


async def _window(
    spec: ClosedLoopSpec, index: int, begin: float, end: float, result: LoadResult
) -> None:
    """CPU use inside the window: this process's, and (process 0) the server's and machine's."""
    await asyncio.sleep(max(0.0, begin - time.monotonic()))
    own = time.process_time()
    usage = CpuWindow()
    usage.start(spec.server_pids if index == 0 else ())
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    used = usage.stop()
    result.client_cpu_seconds = time.process_time() - own
    if index == 0:
        result.server_cores, result.machine_cores = used["procs"], used["machine"]


async def _loop(
    connection: Connection, spec: ClosedLoopSpec, begin: float, end: float, result: LoadResult
) -> None:
    raw = connection.build("POST", spec.path, spec.body)
    while (sent := time.monotonic()) < end:
        try:
            status, _ = await connection.exchange(raw)
        except NETWORK_ERRORS as exc:
            if begin <= time.monotonic() <= end:
                result.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.01)  # the next exchange reconnects
            continue
        done = time.monotonic()
        if not begin <= done <= end:
            continue
        if status == 202:
            result.ok += 1
            result.latencies_ms.append((done - sent) * 1000.0)
        else:
            result.statuses[status] += 1


async def closed_loop(spec: ClosedLoopSpec, processes: int) -> LoadResult:
    """Run ``processes`` client processes with ``spec``; their merged result."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1, timeout=60)
    results = context.Queue()
    children = [
        context.Process(
            target=_client_process,
            args=(spec, i, barrier, results),
            name=f"bench-client-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        await asyncio.to_thread(barrier.wait)
        wait = spec.warmup + spec.duration + 30.0
        merged = LoadResult()
        for _ in children:
            try:
                _, result, error = await asyncio.to_thread(results.get, True, wait)
            except queue.Empty:
                raise TimeoutError("a client process did not report") from None
            if error:
                raise RuntimeError(error)
            merged.merge(result)
        return merged
    finally:
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        results.close()


# -- from this process ------------------------------------------------------------------------


async def submit_all(
    host: str,
    ports: Sequence[int],
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    headers: Headers = (),
) -> int:
    """Send every body once over ``connections`` connections; fail on any answer but 202."""
    pending = list(range(len(bodies)))[::-1]
    accepted = 0

    async def worker(port: int) -> None:
        nonlocal accepted
        connection = Connection(host, port, headers)
        try:
            while pending:
                body = bodies[pending.pop()]
                status, answer = await connection.request("POST", path, body)
                if status != 202:
                    raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
                accepted += 1
        finally:
            connection.close()

    count = max(1, min(connections, len(bodies)))
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(count)))
    return accepted


@dataclass
class SteadyResult:
    ids: list[str] = field(default_factory=list)
    late: int = 0  # sends more than 5 ms behind schedule (every connection was busy)
    statuses: Counter[int] = field(default_factory=Counter)

    def check(self) -> None:
        """Fail unless every request was accepted."""
        if self.statuses or not self.ids:
            raise RuntimeError(f"answers other than 202: {dict(self.statuses)}")


async def steady(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    connections: int = 4,
    headers: Headers = (),
) -> SteadyResult:
    """Send each of ``bodies`` in turn, ``rate`` a second, open loop: each request goes out on
    schedule on an idle keep-alive connection of a small pool, whatever the answer times of
    the others."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        connection = Connection(host, port, headers)
        await connection.open()
        idle.put_nowait(connection)
    result = SteadyResult()

    async def send(due: float, body: bytes) -> None:
        connection = await idle.get()
        if time.monotonic() - due > 0.005:
            result.late += 1
        try:
            status, answer = await connection.exchange(connection.build("POST", path, body))
        finally:
            idle.put_nowait(connection)
        if status == 202:
            result.ids.append(json.loads(answer)["id"])
        else:
            result.statuses[status] += 1

    start = time.monotonic() + 0.05
    sends = []
    try:
        for i, body in enumerate(bodies):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sends.append(asyncio.create_task(send(due, body)))
        await asyncio.gather(*sends)
    finally:
        for task in sends:
            task.cancel()
        while not idle.empty():
            idle.get_nowait().close()
    return result
