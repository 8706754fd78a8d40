"""A Registry with an every-second schedule, loaded by real processes through TASKFLOW_TASKS."""

from __future__ import annotations

from datetime import timedelta

from taskflow import Registry, TaskContext

tasks = Registry()

SCHEDULE = "every-second"


@tasks.task("periodic.tick")
async def tick(payload: dict[str, object], ctx: TaskContext) -> dict[str, object]:
    return dict(payload)


tasks.periodic(SCHEDULE, type="periodic.tick", every=timedelta(seconds=1), payload={"k": "v"})
