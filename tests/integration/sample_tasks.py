"""A user's task module, loaded by real processes through TASKFLOW_TASKS."""

from __future__ import annotations

import threading
import time

import msgspec

from taskflow import Fail, Registry, TaskContext

tasks = Registry()


class Invoice(msgspec.Struct):
    order_id: str
    amount_cents: int


@tasks.task("billing.send_invoice", max_retries=5, queue="billing", timeout_seconds=30)
async def send_invoice(payload: Invoice, ctx: TaskContext) -> dict[str, object]:
    await ctx.progress(0.5, "rendered")
    if payload.amount_cents < 0:
        raise Fail("negative amount")
    return {"sent": payload.order_id, "attempt": ctx.attempt}


@tasks.task("reports.build")
def build_report(payload: dict[str, object], ctx: TaskContext) -> dict[str, object]:
    ctx.progress(1.0, "done")
    return {"thread": threading.current_thread().name, "rows": payload.get("rows", 0)}


@tasks.task("sample.hog")
async def hog(payload: dict[str, float], ctx: TaskContext) -> dict[str, int]:
    # Blocks the worker's event loop on purpose: a badly written async handler.
    time.sleep(payload["seconds"])  # noqa: ASYNC251 - the point of this task
    return {"attempt": ctx.attempt}


@tasks.task("sample.nul")
async def nul(payload: dict[str, bool], ctx: TaskContext) -> dict[str, list[str]]:
    """Puts U+0000, which PostgreSQL cannot store, wherever a handler can."""
    await ctx.progress(0.5, "half\x00way")
    if payload.get("raise"):
        raise RuntimeError("broken\x00here")
    return {"rows": ["fine", "not\x00fine"]}
