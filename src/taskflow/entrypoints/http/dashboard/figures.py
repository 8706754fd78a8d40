"""The overview's figures, read at most once every ``FRESH_FOR`` seconds per API process.

Counting tasks by status reads the whole table (as ``GET /api/tasks/stats`` does); each open
overview asks for it at every refresh, so the answer is shared by every tab this process
serves for a moment: however many people watch, the store counts about once per period per
tenant (each tenant's overview counts its own tasks only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from litestar import Request

from taskflow.domain.queries import TaskCount
from taskflow.domain.services import TaskService
from taskflow.domain.throughput import Minute
from taskflow.entrypoints.http.auth import tenant_of

#: Shorter than the pages' refresh period (3 s, dashboard.js), so each refresh can see news.
FRESH_FOR = 2.0
_STATE_KEY = "dashboard_figures"


@dataclass(frozen=True, slots=True)
class Figures:
    read_at: float  # time.monotonic()
    counts: list[TaskCount]
    minutes: list[Minute]


async def figures(request: Request[Any, Any, Any], service: TaskService) -> Figures:
    tenant = tenant_of(request)
    shared: dict[str, Figures] = request.app.state.setdefault(_STATE_KEY, {})
    kept = shared.get(tenant)
    now = time.monotonic()
    if kept is not None and now - kept.read_at < FRESH_FOR:
        return kept
    fresh = Figures(
        now,
        await service.stats(tenant=tenant),
        await service.finished_per_minute(tenant=tenant),
    )
    shared[tenant] = fresh
    return fresh
