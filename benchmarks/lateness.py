"""The lateness phase: how long after its `run_at` a task starts, for each of the three ways a
task comes to be due in the future: a delayed submission, a retry's backoff, and a hand-back by
a worker that stops. Per task `started_at - run_at`, both from PostgreSQL's clock."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from benchmarks.bench import Bench, Params, Result, Results, alive, warm_up
from benchmarks.client import Connection, single_body
from benchmarks.deploy import HOST, Proc
from benchmarks.load import steady
from benchmarks.measure import percentile

DELAYS = (0.3, 0.8)  # seconds, the range of the delayed submissions' delay_seconds
HELD_SECONDS = 600  # the handed-back tasks sleep far longer than the phase; they are cancelled
KINDS = {
    "delayed": f"delayed {DELAYS[0]:g}-{DELAYS[1]:g} s",
    "retried": "retry after a failure",
    "released": "handed back by a stopping worker",
}
LATENESS_ROWS = [
    (f"lateness_{kind}_p{q}", f"start lateness p{q}, {label}", "ms")
    for kind, label in KINDS.items()
    for q in (50, 99)
]


async def lateness(bench: Bench) -> Results:
    await bench.fresh("lateness")
    [api] = await bench.deploy.start_apis(1)
    run = _Run(bench, api.port or 0)
    results = await run.released()  # first: it starts the measured worker
    results |= await run.delayed()
    results |= await run.retried()
    return results


@dataclass
class _Run:
    bench: Bench
    port: int
    worker: list[Proc] = field(default_factory=list)  # the measured one
    succeeded: int = 0  # tasks SUCCESS so far

    @property
    def params(self) -> Params:
        return self.bench.params

    @property
    def load(self) -> str:
        return f"{self.params.lateness_rate:g}/s for {self.params.lateness_seconds:g} s"

    async def released(self) -> Results:
        """Tasks handed back by a worker that stops, taken by the idle one."""
        p, store = self.params, self.bench.store
        # Their first attempts must go to the worker that will stop: it runs alone until it
        # holds them all (its concurrency is exactly their number, so it takes nothing else).
        [leaving] = self.bench.deploy.start_workers(
            1, {"TASKFLOW_WORKER_CONCURRENCY": str(p.released_tasks)}
        )
        sleeper = single_body(type="debug.sleep", payload={"seconds": HELD_SECONDS})
        held = await self._submit([sleeper] * p.released_tasks)
        await _until(
            "the stopping worker claims its tasks",
            lambda: _counted(store.count_started(held, 1), len(held)),
            alive([leaving]),
        )
        self.worker = self.bench.deploy.start_workers(1)
        self.succeeded = await warm_up(self.bench, self.port, self.worker)
        await self.bench.deploy.hand_back(leaving)
        released = await store.count_outcome(held, "RELEASED")
        await _until(
            "the idle worker takes the handed-back tasks",
            lambda: _counted(store.count_started(held, 2), released),
            alive(self.worker),
        )
        results = _rows(
            "released",
            await store.lateness_ms(held, 2),
            f"{p.released_tasks} debug.sleep tasks held by a second worker (concurrency "
            f"{p.released_tasks}), stopped by two SIGTERMs: {released} handed back at once "
            "(run_at = the release); started_at - run_at of the next attempt",
        )
        await _cancel(Connection(HOST, self.port, self.bench.deploy.headers), held)
        await _until("the held tasks are cancelled", _none_running(self.bench), alive(self.worker))
        return results

    async def delayed(self) -> Results:
        pick = random.Random(10)
        delayed = await self._finished(
            [single_body(delay_seconds=round(pick.uniform(*DELAYS), 3)) for _ in self._each()]
        )
        return _rows(
            "delayed",
            await self.bench.store.lateness_ms(delayed, 1),
            f"no-op tasks with delay_seconds uniform in {DELAYS[0]:g}-{DELAYS[1]:g} s at "
            f"{self.load}; started_at - run_at",
        )

    async def retried(self) -> Results:
        failing = single_body(type="debug.fail", payload={"fail_attempts": 1})
        retried = await self._finished([failing for _ in self._each()])
        waits = await self.bench.store.retry_waits(retried)
        return _rows(
            "retried",
            await self.bench.store.lateness_ms(retried, 2),
            f'debug.fail {{"fail_attempts": 1}} at {self.load}, the default backoff: each retry '
            f"was due {min(waits):.2f}-{max(waits):.2f} s after its failure; started_at - "
            "run_at of the second attempt",
        )

    def _each(self) -> range:
        return range(round(self.params.lateness_rate * self.params.lateness_seconds))

    async def _submit(self, bodies: list[bytes]) -> list[str]:
        sent = await steady(
            HOST,
            self.port,
            "/api/tasks",
            bodies,
            rate=self.params.lateness_rate,
            headers=self.bench.deploy.headers,
        )
        sent.check()
        return sent.ids

    async def _finished(self, bodies: list[bytes]) -> list[str]:
        """Submit ``bodies`` and wait until all of them are SUCCESS."""
        ids = await self._submit(bodies)
        self.succeeded += len(ids)
        await self.bench.store.wait_success(self.succeeded, check=alive(self.worker))
        return ids


def _rows(kind: str, samples: list[float], how: str) -> Results:
    if not samples:
        raise RuntimeError(f"no {kind} task started")
    notes = f"{how}; {len(samples)} tasks; api x1, worker x1 idle and warmed up"
    return {
        f"lateness_{kind}_p{q}": Result(percentile(samples, q), notes, {"samples": len(samples)})
        for q in (50, 99)
    }


async def _cancel(connection: Connection, ids: list[str]) -> None:
    try:
        for task_id in ids:
            status, answer = await connection.request("POST", f"/api/tasks/{task_id}/cancel")
            if status not in (200, 409):  # 409: it was final already
                raise RuntimeError(f"cancel answered {status}: {answer[:300]!r}")
    finally:
        connection.close()


async def _counted(count: Awaitable[int], target: int) -> bool:
    return await count >= target


def _none_running(bench: Bench) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        return await bench.store.count("PROCESSING") + await bench.store.count("PENDING") == 0

    return done


async def _until(
    what: str,
    done: Callable[[], Awaitable[bool]],
    check: Callable[[], None],
    timeout: float = 60.0,
) -> None:
    """Poll ``done()`` every 20 ms; ``check()`` fails early (a process died)."""
    deadline = time.monotonic() + timeout
    while not await done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        check()
        await asyncio.sleep(0.02)
