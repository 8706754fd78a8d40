"""A registry for measuring a type rate limit: ``debug.echo`` itself limited, far above the load.

Run with ``--env TASKFLOW_TASKS=benchmarks.limited_echo:tasks --env TASKFLOW_DEBUG_TASKS=false``
(docs/performance.md, issue 11): every task the drain claims passes the limiter, which never
refuses one.
"""

from __future__ import annotations

from typing import Any

from taskflow import Registry, TaskContext

tasks = Registry()


@tasks.task("debug.echo", rate_limit="1000000/s")
async def echo(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    return payload
