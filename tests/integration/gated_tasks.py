"""Task types for the command-line tests: each waits at gates (files a test creates), and
reports its progress before each one, so a test sees every step whatever the timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from taskflow import Registry, TaskContext

tasks = Registry()


class Gates(msgspec.Struct, forbid_unknown_fields=True):
    gates: list[str]


@tasks.task("gated.steps", max_retries=0)
async def steps(payload: Gates, ctx: TaskContext) -> dict[str, int]:
    total = len(payload.gates)
    for passed, gate in enumerate(payload.gates):
        await ctx.progress(passed / total, f"waiting at gate {passed + 1}")
        while True:
            if await asyncio.to_thread(Path(gate).exists):
                break
            await asyncio.sleep(0.02)
    return {"gates": total}
