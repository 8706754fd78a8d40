"""Built-in task types for trying taskflow out; off with TASKFLOW_DEBUG_TASKS=false.

See docs/api.md, "Python API".
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec

from taskflow.handlers import TaskContext
from taskflow.registry import Registry

tasks = Registry()


class SleepIn(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)]


class FailIn(msgspec.Struct, forbid_unknown_fields=True):
    fail_attempts: Annotated[int, msgspec.Meta(ge=0)]
    message: str = "debug.fail: failing on purpose"


class DebugFailure(Exception):
    """Raised by debug.fail while it is asked to fail."""


@tasks.task("debug.echo")
async def echo(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    return payload


@tasks.task("debug.sleep")
async def sleep(payload: SleepIn, ctx: TaskContext) -> dict[str, float]:
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds}


@tasks.task("debug.fail")
async def fail(payload: FailIn, ctx: TaskContext) -> dict[str, int]:
    if ctx.attempt <= payload.fail_attempts:
        raise DebugFailure(payload.message)
    return {"attempts": ctx.attempt}
