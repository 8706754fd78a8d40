"""GET /api/tasks on a large table: each filter's plan and time on PostgreSQL.

    .venv/bin/python -m benchmarks.listing [--rows 1000000] [--keep]

Creates a database of its own (dropped at the end unless --keep), migrates it, fills it with
``--rows`` tasks in one INSERT … SELECT (30 days of history, 20 types on 10 queues, 90 %
SUCCESS; one task in 10,000 of type ``bench.rare`` on queue ``rare``), then runs each listing
the API would run, through ``SqlTaskRepository.find``: the statement is caught as it is sent
and run again under ``EXPLAIN (ANALYZE, BUFFERS)``, and the call itself is timed (best and
median of 7, after one warm-up). Results: docs/performance.md, "Listing".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import event

from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.domain.model import TaskStatus
from taskflow.domain.queries import MetadataEquals, Page, Position, TaskQuery

ADMIN = os.environ.get("TASKFLOW_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PAGE = 50

FILL = """
INSERT INTO tasks (id, type, payload, status, queue, priority, attempts, retry_count,
                   max_retries, run_at, created_at, updated_at, finished_at, cancel_requested,
                   metadata, version, backoff_base, backoff_max, started_at,
                   lease_token, lease_worker_id, lease_expires_at)
SELECT gen_random_uuid(), CASE WHEN i % 10000 = 5 THEN 'bench.rare' ELSE 'bench.t' || (i % 20) END,
       '{}'::jsonb, s.status, CASE WHEN i % 10000 = 5 THEN 'rare' ELSE 'q' || (i % 20 % 10) END,
       5, 1, 0, 3, c.at, c.at, c.at, CASE WHEN s.status IN ('PENDING', 'PROCESSING') THEN NULL
       ELSE c.at END, false,
       jsonb_build_object('customer', CASE WHEN i % 2 = 0 THEN to_jsonb(i % 10000)
                                           ELSE to_jsonb((i % 10000)::text) END,
                          'tenant', (ARRAY['acme', 'globex', 'initech'])[i % 3 + 1]),
       1, 1.0, 300.0, c.at,
       CASE WHEN s.status = 'PROCESSING' THEN gen_random_uuid() END,
       CASE WHEN s.status = 'PROCESSING' THEN 'bench' END,
       CASE WHEN s.status = 'PROCESSING' THEN $2::timestamptz + interval '1 day' END
FROM generate_series(1, $1::int) AS i,
     LATERAL (SELECT $2::timestamptz - ($1::int - i) * interval '2592 milliseconds' AS at) c,
     LATERAL (SELECT CASE WHEN i % 100 < 90 THEN 'SUCCESS' WHEN i % 100 < 95 THEN 'FAILED'
                          WHEN i % 100 < 98 THEN 'PENDING' WHEN i % 100 < 99 THEN 'PROCESSING'
                          ELSE 'CANCELLED' END AS status) s
"""


def cases(now: datetime) -> dict[str, TaskQuery]:
    window = now - timedelta(days=15)
    return {
        "no filter": TaskQuery(),
        "status=FAILED (5 %)": TaskQuery(statuses=frozenset({TaskStatus.FAILED})),
        "status=CANCELLED (1 %)": TaskQuery(statuses=frozenset({TaskStatus.CANCELLED})),
        "status=PENDING&status=PROCESSING (4 %)": TaskQuery(
            statuses=frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})
        ),
        "queue=q3 (10 %)": TaskQuery(queue="q3"),
        "type=bench.t7 (5 %)": TaskQuery(type="bench.t7"),
        "queue=rare (0.01 %)": TaskQuery(queue="rare"),
        "type=bench.rare (0.01 %)": TaskQuery(type="bench.rare"),
        "queue=unused (no task)": TaskQuery(queue="unused"),
        "created in one hour, 15 days ago": TaskQuery(
            created_after=window, created_before=window + timedelta(hours=1)
        ),
        "metadata.customer=42 (0.01 %)": TaskQuery(metadata=(MetadataEquals("customer", "42"),)),
        "metadata.tenant=acme (33 %)": TaskQuery(metadata=(MetadataEquals("tenant", "acme"),)),
        "status=FAILED&queue=q3&metadata.tenant=acme": TaskQuery(
            statuses=frozenset({TaskStatus.FAILED}),
            queue="q3",
            metadata=(MetadataEquals("tenant", "acme"),),
        ),
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    await call()
    times = []
    for _ in range(7):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), statistics.median(times)


async def run(rows: int, keep: bool) -> None:
    name = f"taskflow_bench_listing_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        await migrate(url.replace("postgresql://", "postgresql+asyncpg://"))
        direct = await asyncpg.connect(url)
        now = datetime.now(UTC)
        started = time.perf_counter()
        await direct.execute(FILL, rows, now)
        await direct.execute("VACUUM ANALYZE tasks")
        print(f"filled {rows:,} tasks in {time.perf_counter() - started:.1f} s")
        await measure(url, direct, now)
        await direct.close()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(url: str, direct: asyncpg.Connection, now: datetime) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    repo = SqlTaskRepository(engine)
    sent: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    async def explain(call: Callable[[], Awaitable[Any]]) -> str:
        sent.clear()
        await call()
        statement, parameters = sent[-1]
        plan = await direct.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *parameters)
        return "\n".join("    " + row[0] for row in plan)

    for label, query in cases(now).items():
        first = await repo.find(query, after=None, limit=PAGE + 1)
        await report(label, lambda q=query: repo.find(q, after=None, limit=PAGE + 1), explain)
        page = Page.of(first, PAGE)
        if page.next is not None:
            await report(
                f"{label}, the next page (cursor)",
                lambda q=query, p=page.next: repo.find(q, after=p, limit=PAGE + 1),
                explain,
            )
    deep = Position(now - timedelta(days=20), uuid.UUID(int=2**128 - 1))
    await report(
        "no filter, a page 20 days back (cursor)",
        lambda: repo.find(TaskQuery(), after=deep, limit=PAGE + 1),
        explain,
    )
    await report("stats (GROUP BY queue, type, status)", repo.stats, explain)
    await repo.close()
    await engine.dispose()


async def report(
    label: str,
    call: Callable[[], Awaitable[Any]],
    explain: Callable[[Callable[[], Awaitable[Any]]], Awaitable[str]],
) -> None:
    best, median = await timed(call)
    print(f"\n## {label}: best {best:.2f} ms, median {median:.2f} ms\n{await explain(call)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.keep))


if __name__ == "__main__":
    main()
