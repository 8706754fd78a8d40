"""Task types for fault-injection tests, loaded by real processes through TASKFLOW_TASKS.

A ledger is a file outside the queue and the store: ``fault.ledger`` appends a line to it when
an attempt starts and when its handler ends, so a test can count executions and tell which
process ran each one, whatever the store says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import NamedTuple

import msgspec

from taskflow import Registry, Retry, TaskContext

tasks = Registry()


class SleepIn(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


class LedgerIn(msgspec.Struct, forbid_unknown_fields=True):
    ledger: str
    # Seconds to sleep on attempt n: sleeps[n - 1], the last value for every later attempt.
    sleeps: tuple[float, ...] = (0.2,)


class GateIn(msgspec.Struct, forbid_unknown_fields=True):
    path: str  # the attempt runs until a file appears here: the test opens the gate
    seconds: float = 120.0  # and fails if none has by then


class BlockIn(msgspec.Struct, forbid_unknown_fields=True):
    # Seconds to block on attempt n: sleeps[n - 1], the last value for every later attempt.
    sleeps: tuple[float, ...]


class CrashIn(msgspec.Struct, forbid_unknown_fields=True):
    ledger: str | None = None


class FlakyIn(msgspec.Struct, forbid_unknown_fields=True):
    fail_attempts: int
    retry_after: float


class LedgerEntry(NamedTuple):
    event: str  # "start" or "end"
    task_id: str
    attempt: int
    token: str
    pid: int


def write_ledger(path: str, event: str, ctx: TaskContext) -> None:
    line = f"{event} {ctx.task_id} {ctx.attempt} {ctx.token} {os.getpid()}\n".encode()
    # O_APPEND: concurrent writers in other processes never interleave one short line.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_ledger(path: Path, task_id: str | None = None) -> list[LedgerEntry]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        event, tid, attempt, token, pid = line.split()
        if task_id is None or tid == task_id:
            entries.append(LedgerEntry(event, tid, int(attempt), token, int(pid)))
    return entries


@tasks.task("fault.sleep")
async def sleep(payload: SleepIn, ctx: TaskContext) -> dict[str, object]:
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds, "pid": os.getpid()}


@tasks.task("fault.gate")
async def gate(payload: GateIn, ctx: TaskContext) -> dict[str, object]:
    """Runs until the test creates the file ``path``: a hold the test ends, not a guess."""
    deadline = time.monotonic() + payload.seconds
    while not await asyncio.to_thread(os.path.exists, payload.path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gate {payload.path} was never opened")
        await asyncio.sleep(0.05)
    return {"pid": os.getpid()}


@tasks.task("fault.block")
def block(payload: BlockIn, ctx: TaskContext) -> dict[str, object]:
    # A plain def runs in the worker's thread pool; cancelling the attempt cannot stop it.
    seconds = payload.sleeps[min(ctx.attempt, len(payload.sleeps)) - 1]
    time.sleep(seconds)
    return {"blocked": seconds, "pid": os.getpid()}


@tasks.task("fault.crash")
async def crash(payload: CrashIn, ctx: TaskContext) -> None:
    """Kills whichever worker process runs it, as a segfault or the OOM killer would."""
    if payload.ledger:
        write_ledger(payload.ledger, "start", ctx)
    os._exit(1)


@tasks.task("fault.ledger")
async def ledger(payload: LedgerIn, ctx: TaskContext) -> dict[str, object]:
    write_ledger(payload.ledger, "start", ctx)
    await asyncio.sleep(payload.sleeps[min(ctx.attempt, len(payload.sleeps)) - 1])
    write_ledger(payload.ledger, "end", ctx)
    return {"attempt": ctx.attempt, "pid": os.getpid(), "token": str(ctx.token)}


@tasks.task("fault.stubborn")
async def stubborn(payload: LedgerIn, ctx: TaskContext) -> dict[str, object]:
    """Its first attempt ignores every cancel, as a handler that catches CancelledError does,
    for two minutes at most; later attempts run as ``fault.ledger``'s."""
    write_ledger(payload.ledger, "start", ctx)
    if ctx.attempt == 1:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(asyncio.CancelledError):  # told to stop: it does not
                await asyncio.sleep(0.1)
    write_ledger(payload.ledger, "end", ctx)
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@tasks.task("fault.flaky")
async def flaky(payload: FlakyIn, ctx: TaskContext) -> dict[str, int]:
    """Asks for a retry after ``retry_after`` seconds while ``attempt <= fail_attempts``."""
    if ctx.attempt <= payload.fail_attempts:
        raise Retry(after=payload.retry_after, message=f"attempt {ctx.attempt} asks for a retry")
    return {"attempts": ctx.attempt}
