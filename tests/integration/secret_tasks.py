"""Task types whose payloads carry a secret, for the test that no log line ever shows one.

Loaded by real processes through TASKFLOW_TASKS; every type takes any payload (a dict), so a
test can put a planted secret beside the fields a handler reads.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from taskflow import Registry, TaskContext

tasks = Registry()


@tasks.task("secret.flaky")
async def flaky(payload: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    if ctx.attempt <= payload["fail_attempts"]:
        raise RuntimeError("failing on purpose")  # the message says nothing of the payload
    return {"attempt": ctx.attempt}


@tasks.task("secret.gate")
async def gate(payload: dict[str, Any], ctx: TaskContext) -> None:
    """Runs until the file at ``path`` exists (or it is cancelled)."""
    path = Path(payload["path"])
    for _ in range(1200):
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the gate never opened")


@tasks.task("secret.crash")
async def crash(payload: dict[str, Any], ctx: TaskContext) -> None:
    os._exit(3)  # the worker dies holding the lease: a sweep reaps it once the lease is over
