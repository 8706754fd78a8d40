"""Build a CSV report, reporting progress as it goes.

    REPORTS_DIR=/srv/reports TASKFLOW_TASKS=examples.reports.tasks:tasks taskflow dev

    taskflow submit reports.sales_csv --wait \\
        --payload '{"customer_id": "c-42", "day": "2026-11-30", "rows": 50000}'

While it runs, ``taskflow status ID`` (or ``GET /api/tasks/ID``) shows how far it got in the
task's ``progress``: ``{"fraction": 0.4, "message": "20000 of 50000 rows"}``. When it is done,
the task's result names the file and its row count.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
from datetime import date
from pathlib import Path
from typing import Annotated

import msgspec

from examples.uploads.atomic import atomic_write
from taskflow import Registry, TaskContext

tasks = Registry()

CHUNK = 5_000  # rows fetched and written per step, and between two progress reports
COLUMNS = ("order_id", "customer_id", "day", "sku", "quantity", "amount_cents")


class SalesReport(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]  # in a file name
    day: date
    rows: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 10_000


def sales(report: SalesReport, start: int, count: int) -> list[tuple[object, ...]]:
    """Rows ``start`` to ``start + count`` of the report.

    A stand-in for a page of a query on your database (``… ORDER BY id LIMIT count OFFSET
    start``, or better a keyset): made-up orders, the same for the same report.
    """
    return [
        (f"{report.day:%Y%m%d}-{n:07d}", report.customer_id, report.day.isoformat(), *_order(n))
        for n in range(start, min(start + count, report.rows))
    ]


def _order(n: int) -> tuple[str, int, int]:
    pick = random.Random(n)  # nosec B311  # made-up data, not a secret
    return f"SKU-{pick.randrange(1000):03d}", pick.randint(1, 5), pick.randrange(100, 50_000)


# concurrency=1 per customer_id: one customer's export at a time, across every worker, while
# other customers' exports go on.
@tasks.task(
    "reports.sales_csv",
    max_retries=2,
    timeout_seconds=900,
    concurrency=1,
    concurrency_key="customer_id",
)
async def sales_csv(payload: SalesReport, ctx: TaskContext) -> dict[str, object]:
    directory = Path(os.environ.get("REPORTS_DIR", "reports"))
    path = directory / f"sales-{payload.customer_id}-{payload.day.isoformat()}.csv"
    written = 0
    # Written to a temporary file that becomes `path` only once complete (see atomic.py): a
    # reader never sees half a report, and a re-run after a crash simply writes it again.
    with atomic_write(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for start in range(0, payload.rows, CHUNK):
            # Blocking work goes to a thread, so that the worker's other tasks and its
            # heartbeats keep running on the event loop meanwhile.
            rows = await asyncio.to_thread(sales, payload, start, CHUNK)
            await asyncio.to_thread(writer.writerows, rows)
            written += len(rows)
            await ctx.progress(written / payload.rows, f"{written} of {payload.rows} rows")
    await ctx.progress(1.0, f"{written} rows written")
    return {"path": str(path), "rows": written}
