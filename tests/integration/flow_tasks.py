"""Task types with flow limits, for the proof that the limits hold across real workers.

Each handler appends ``start``/``end`` lines to a ledger file with the wall-clock time, its
process and its attempt. A handler runs only while its task holds its slots (taken before the
claim, given back after the outcome is written), so the ledger's intervals lie within the
slots' and counting them cannot undercount what the limiter let run.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import NamedTuple

import msgspec

from taskflow import Registry, TaskContext

RATE = 10  # starts per second of flow.rated
SLOTS = 3  # running at once of flow.limited
tasks = Registry()


class Work(msgspec.Struct):
    ledger: str
    seconds: float = 0.0
    customer: str = ""


class Entry(NamedTuple):
    event: str  # "start" or "end"
    task_id: str
    attempt: int
    pid: int
    at: float  # time.time()
    customer: str


def _write(payload: Work, event: str, ctx: TaskContext) -> None:
    line = (
        f"{event} {ctx.task_id} {ctx.attempt} {os.getpid()} {time.time():.6f} {payload.customer}\n"
    )
    # O_APPEND: concurrent writers in other processes never interleave one short line.
    fd = os.open(payload.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        event, task_id, attempt, pid, at, *customer = line.split()
        entries.append(Entry(event, task_id, int(attempt), int(pid), float(at), "".join(customer)))
    return entries


async def _run(payload: Work, ctx: TaskContext) -> None:
    _write(payload, "start", ctx)
    await asyncio.sleep(payload.seconds)
    _write(payload, "end", ctx)


@tasks.task("flow.rated", rate_limit=f"{RATE}/s", queue="flow")
async def rated(payload: Work, ctx: TaskContext) -> None:
    await _run(payload, ctx)


@tasks.task("flow.limited", concurrency=SLOTS, queue="flow")
async def limited(payload: Work, ctx: TaskContext) -> None:
    await _run(payload, ctx)


@tasks.task("flow.keyed", concurrency=1, concurrency_key="customer", queue="flow")
async def keyed(payload: Work, ctx: TaskContext) -> None:
    await _run(payload, ctx)


@tasks.task("flow.free", queue="flow")
async def free(payload: Work, ctx: TaskContext) -> None:
    await _run(payload, ctx)
