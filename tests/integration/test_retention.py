"""Retention in a real deployment: `taskflow worker` processes delete the finished tasks past
their queue's retention, with their attempt history, each once, and log it.

The old tasks are written straight into the database with a ``finished_at`` a month ago (as
``benchmarks.retention`` seeds them); what the workers ran themselves is recent and stays.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from benchmarks.retention import OLD_TYPE, SEED_SQL
from sqlalchemy import make_url

from tests.integration.conftest import StackFactory
from tests.integration.processes import Process, wait_for

OLD = 2_500  # three batches and a half
AUDIT = 100  # of them moved to the queue "audit", kept 90 days


def dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def query(database_url: str, sql: str, *args: Any) -> Any:
    db = await asyncpg.connect(dsn(database_url))
    try:
        return await db.fetchval(sql, *args)
    finally:
        await db.close()


async def seed(database_url: str) -> None:
    db = await asyncpg.connect(dsn(database_url))
    try:
        await db.execute(SEED_SQL, 1, OLD)
        await db.execute(
            "UPDATE tasks SET queue = 'audit' WHERE id IN "
            "(SELECT id FROM tasks WHERE type = $1 ORDER BY id LIMIT $2)",
            OLD_TYPE,
            AUDIT,
        )
    finally:
        await db.close()


def pruned(workers: list[Process]) -> list[dict[str, Any]]:
    return [
        entry
        for worker in workers
        for line in worker.output().splitlines()
        if '"retention pruned"' in line
        for entry in [json.loads(line)]
    ]


def test_workers_delete_old_finished_tasks_with_their_attempts_once_each_and_log_it(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(TASKFLOW_RETENTION_DAYS="7", TASKFLOW_RETENTION_DAYS_BY_QUEUE="audit=90")
    url = stack.env["TASKFLOW_DATABASE_URL"]
    asyncio.run(seed(url))
    stack.start_api()
    recent = stack.submit({"type": "debug.echo", "payload": {"n": 1}})
    waiting = stack.submit({"type": "debug.echo", "payload": {}, "delay_seconds": 3600})

    workers = [stack.start_worker(), stack.start_worker()]
    stack.wait_status([recent["id"]], timeout=60)
    wait_for(
        lambda: sum(e["tasks"] for e in pruned(workers)) >= OLD - AUDIT,
        timeout=120,
        interval=0.2,
        what=f"the workers to log {OLD - AUDIT} tasks pruned\n{stack.dump_logs()}",
    )

    lines = pruned(workers)
    # Each task deleted once: the workers' counts add up to exactly what went.
    assert sum(e["tasks"] for e in lines) == OLD - AUDIT
    for entry in lines:
        assert entry["level"] == "INFO"
        assert entry["batches"] >= 1
        assert entry["duration_s"] >= 0
        assert entry["cutoff"] is not None
        assert entry["cutoffs_by_queue"]["audit"] < entry["cutoff"]
    count = "SELECT count(*) FROM tasks WHERE type = $1"
    assert asyncio.run(query(url, count, OLD_TYPE)) == AUDIT
    history = "SELECT count(*) FROM attempts WHERE worker_id = 'bench-seed'"
    assert asyncio.run(query(url, history)) == AUDIT
    assert stack.task(recent["id"])["status"] == "SUCCESS"
    assert stack.task(waiting["id"])["status"] == "PENDING"
