"""Issue 11, retention: on a table holding 1,000,000 finished tasks a month old, how fast the
workers' retention job deletes them, and how fast 2 workers drain no-op tasks with that job
running at the same time, without it, and without it nor its index (docs/performance.md,
"Issue 11 — retention").

    python -m benchmarks.retention [--rows 1000000] [--drain 20000] [--runs 2]

Everything runs in a database and Redis prefix of its own (``deploy.in_own_database``),
dropped at the end. The old tasks are written by ``INSERT … SELECT generate_series``, one
attempt row each, as a drain would have left them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from benchmarks.bench import Bench, Params, alive, ports_of
from benchmarks.deploy import Deployment, Proc, in_own_database
from benchmarks.measure import Store
from taskflow.entrypoints.retention import DUTY

OLD_TYPE = "bench.old"
#: Finished tasks written per statement while seeding.
SEED_CHUNK = 100_000
WORKERS = 2
RETENTION_ON = {"TASKFLOW_RETENTION_DAYS": "7"}
RETENTION_OFF = {"TASKFLOW_RETENTION_DAYS": "0"}
#: The drains, alternated run after run: retention off without its index (what a task cost
#: before retention), off with it (the index's cost alone), on (the job running meanwhile).
MODES = {"noindex": RETENTION_OFF, "off": RETENTION_OFF, "on": RETENTION_ON}
INDEX = "ix_tasks_finished_at"
INDEX_DDL = (
    f"CREATE INDEX {INDEX} ON tasks (finished_at) "
    "WHERE status IN ('CANCELLED', 'FAILED', 'SUCCESS')"
)

# Tasks that succeeded between 30 days and 30 days + $2 seconds ago, each with its attempt.
SEED_SQL = f"""
WITH seeded AS (
  INSERT INTO tasks (id, type, payload, status, queue, priority, attempts, retry_count,
                     max_retries, timeout_seconds, run_at, created_at, started_at, finished_at,
                     updated_at, cancel_requested, progress, result, error, metadata,
                     idempotency_key, version, lease_token, lease_worker_id, lease_expires_at,
                     backoff_base, backoff_max)
  SELECT gen_random_uuid(), '{OLD_TYPE}', '{{}}'::jsonb, 'SUCCESS', 'default', 5, 1, 0, 3, NULL,
         t, t, t, t, t, false, NULL, NULL, NULL, '{{}}'::jsonb, NULL, 3, NULL, NULL, NULL,
         1.0, 300.0
  FROM (SELECT now() - interval '30 days' - g * interval '1 millisecond' AS t
        FROM generate_series($1::int, $2::int) AS g) AS s
  RETURNING id, started_at, finished_at
)
INSERT INTO attempts (task_id, attempt, worker_id, started_at, finished_at, outcome, error)
SELECT id, 1, 'bench-seed', started_at, finished_at, 'SUCCESS', NULL FROM seeded
"""


@dataclass
class Figures:
    rows: int
    seed_seconds: float = 0.0
    prune_rate: float = 0.0  # tasks deleted per second, the job alone
    prune_seconds: float = 0.0
    drains: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    pruned_during_drain: list[int] = field(default_factory=list)
    prune_lines: list[dict[str, Any]] = field(default_factory=list)


async def old_left(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM tasks WHERE type = $1", OLD_TYPE))


async def seed(db: asyncpg.Connection, rows: int) -> float:
    """Top the old tasks up to ``rows``; the seconds it took."""
    started = time.monotonic()
    have = await old_left(db)
    for start in range(have, rows, SEED_CHUNK):
        await db.execute(SEED_SQL, start + 1, min(rows, start + SEED_CHUNK))
    await db.execute("VACUUM ANALYZE tasks")
    await db.execute("VACUUM ANALYZE attempts")
    return time.monotonic() - started


async def until(
    figure: Callable[[], Awaitable[int]],
    done: Callable[[int], bool],
    procs: list[Proc],
    *,
    what: str,
    stall: float,
    interval: float,
) -> None:
    """Poll ``figure`` until ``done`` says so; fail when a process exits or the figure has not
    moved for ``stall`` seconds."""
    last, moved = -1, time.monotonic()
    while not done(value := await figure()):
        if value != last:
            last, moved = value, time.monotonic()
        elif time.monotonic() - moved > stall:
            raise TimeoutError(f"{what} stalled at {value}")
        alive(procs)()
        await asyncio.sleep(interval)


def pruned_lines(procs: list[Proc]) -> list[dict[str, Any]]:
    """The "retention pruned" lines the processes logged."""
    lines = []
    for proc in procs:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if '"retention pruned"' in line:
                lines.append(json.loads(line))
    return lines


async def drain(
    bench: Bench, db: asyncpg.Connection, settings: dict[str, str]
) -> tuple[float, int]:
    """Queue the drain's tasks, then let 2 workers with ``settings`` run them all; answers
    tasks per second (first claim to last completion, by the tasks' own timestamps) and how
    many old tasks went meanwhile."""
    n = bench.params.drain_tasks
    await db.execute("DELETE FROM tasks WHERE type <> $1", OLD_TYPE)
    await db.execute("VACUUM ANALYZE tasks")
    await bench.deploy.clear_redis()
    apis = await bench.deploy.start_apis(1)
    await bench.enqueue(ports_of(apis), n)
    await bench.deploy.stop(apis)
    before = await old_left(db)
    procs = bench.deploy.start_workers(WORKERS, settings)
    succeeded = "SELECT count(*) FROM tasks WHERE type <> $1 AND status = 'SUCCESS'"
    await until(
        lambda: db.fetchval(succeeded, OLD_TYPE),
        lambda done: done >= n,
        procs,
        what="the drain",
        stall=60,
        interval=0.05,
    )
    pruned = before - await old_left(db)
    span = await db.fetchval(
        "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) FROM tasks WHERE type <> $1",
        OLD_TYPE,
    )
    await bench.deploy.stop(procs)
    return n / float(span), pruned


async def measure(deploy: Deployment, args: argparse.Namespace) -> Figures:
    store = await Store.open(deploy.dsn)
    db = await asyncpg.connect(deploy.dsn)
    bench = Bench(deploy, store, Params(drain_tasks=args.drain))
    figures = Figures(args.rows)
    try:
        deploy.phase = "prune"
        figures.seed_seconds = await seed(db, args.rows)
        print(f"seeded {args.rows:,} old tasks in {figures.seed_seconds:.1f} s", flush=True)
        started = time.monotonic()
        procs = deploy.start_workers(WORKERS, RETENTION_ON)
        await until(
            lambda: old_left(db),
            lambda left: left == 0,
            procs,
            what="retention",
            stall=120,
            interval=0.2,
        )
        figures.prune_seconds = time.monotonic() - started
        await deploy.stop(procs)
        # The workers' passes ran side by side: every task they deleted, over the longest pass.
        lines = pruned_lines(procs)
        figures.prune_rate = sum(e["tasks"] for e in lines) / max(e["duration_s"] for e in lines)
        figures.prune_lines = lines
        print(f"retention alone: {figures.prune_rate:,.0f} tasks/s", flush=True)
        for run in range(args.runs):
            for mode, settings in MODES.items():
                deploy.phase = f"drain-{mode}-{run}"
                await seed(db, args.rows)
                if mode == "noindex":
                    await db.execute(f"DROP INDEX {INDEX}")
                rate, pruned = await drain(bench, db, settings)
                if mode == "noindex":
                    await db.execute(INDEX_DDL)
                figures.drains[mode].append(rate)
                if mode == "on":
                    figures.pruned_during_drain.append(pruned)
                print(f"drain, {mode}: {rate:,.0f} tasks/s ({pruned:,} old tasks went)", flush=True)
    finally:
        await db.close()
        await store.close()
    return figures


def report(f: Figures) -> dict[str, object]:
    median = {mode: statistics.median(rates) for mode, rates in f.drains.items()}
    passes = [(e["duration_s"], e["batches"]) for e in f.prune_lines]
    return {
        "old_tasks": f.rows,
        "seed_seconds": round(f.seed_seconds, 1),
        "retention_alone_tasks_per_s": round(f.prune_rate),
        "retention_alone_seconds_from_worker_start": round(f.prune_seconds, 1),
        "retention_mean_batch_ms": [round(d * DUTY / b * 1000, 1) for d, b in passes],
        "retention_pruned_lines": f.prune_lines,
        **{
            f"drain_{mode}_tasks_per_s": [round(r) for r in rates]
            for mode, rates in f.drains.items()
        },
        "old_tasks_deleted_during_each_drain": f.pruned_during_drain,
        "median_ratio_on_to_off": round(median["on"] / median["off"], 3),
        "median_ratio_off_to_noindex": round(median["off"] / median["noindex"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retention", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="old finished tasks")
    parser.add_argument("--drain", type=int, default=20_000, help="tasks of each drain")
    parser.add_argument("--runs", type=int, default=2, help="drains of each kind")
    args = parser.parse_args(argv)
    figures = in_own_database(lambda deploy: measure(deploy, args))
    print(json.dumps(report(figures), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
