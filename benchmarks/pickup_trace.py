"""Where a task's pickup time goes: each step from submission to claim, stamped per task.

Runs the benchmark's latency phase (``benchmarks.run --phases latency``) with the API and the
worker patched, through a ``sitecustomize`` on PYTHONPATH, to append ``step task_id wall_ns``
to a file of their own at each step. PostgreSQL's own instants come from the rows: the insert
is sent with ``RETURNING statement_timestamp(), clock_timestamp()`` (when it began, when the
row was built: where the floor probe's ``created_at`` is taken), and the claimed rows carry
``created_at`` and ``started_at``. All are wall-clock times of one host, so they compare.

    .venv/bin/python -m benchmarks.pickup_trace [--src DIR]

Prints, for the tasks after the warm-up, the median and p99 of each step's time after
``created_at`` and the median of each step on its own. ``--src``: the ``src`` directory of
the code to trace (default this checkout's), for a before/after comparison. A measuring tool
only: each stamp costs a few µs, so traced runs are a little slower than untraced ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 20  # the tasks the phase sends before measuring, while the worker starts
STEPS = (
    "created_at",  # TaskService.submit read the clock and built the task
    "add.enter",  # SqlTaskRepository.add: handed to the insert's group commit
    "insert.flush",  # the group commit's flusher took it (a task of its own)
    "insert.send",  # asyncpg fetch called
    "insert.pg_start",  # PostgreSQL's statement_timestamp()
    "insert.pg_row",  # PostgreSQL's clock_timestamp() once the row was built (the floor's stamp)
    "insert.reply",  # asyncpg returned: committed
    "add.done",  # the submitting request resumed
    "push.enter",  # RedisTaskQueue.push
    "push.flush",  # the push's group flusher took it
    "pop.reply",  # the worker's pop returned the id
    "claim.enter",  # SqlTaskRepository.claim
    "claim.send",  # asyncpg fetch called
    "started_at",  # PostgreSQL's statement_timestamp() of the claim
)
_SITE = f"""
import sys
if "taskflow" in " ".join(sys.argv):
    sys.path.insert(0, {str(ROOT)!r})
    from benchmarks.pickup_trace import install
    install()
"""


def _stamp(out: IO[str], step: str, ids: Iterable[Any], ns: int | None = None) -> None:
    now = time.time_ns() if ns is None else ns
    out.write("".join(f"{step} {task_id} {now}\n" for task_id in ids))


def _wrap(
    owner: Any, name: str, before: Callable[..., Any] | None, after: Callable[..., Any] | None
) -> None:
    original = getattr(owner, name)

    async def traced(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(*args, **kwargs)
        result = await original(*args, **kwargs)
        if after is not None:
            after(result, *args, **kwargs)
        return result

    setattr(owner, name, traced)


def _ns(instant: Any) -> int:
    return int(instant.timestamp() * 1_000_000) * 1000


def install() -> None:
    """Patch the steps of the pickup path in this process to stamp each task they carry."""
    import asyncpg
    import msgspec

    from taskflow.adapters import redis as queue
    from taskflow.adapters.sql import repository

    out = open(f"{os.environ['PICKUP_TRACE']}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115
    repo, redis_queue = repository.SqlTaskRepository, queue.RedisTaskQueue

    def claimed(tasks: list[Any], *_: Any, **__: Any) -> None:
        for task in tasks:
            _stamp(out, "created_at", [task.id], _ns(task.created_at))
            _stamp(out, "started_at", [task.id], _ns(task.started_at))

    def ids_of(dispatches: Any) -> list[Any]:
        return [d.task_id for d in dispatches]

    def pushed(batches: Any) -> list[Any]:
        return [d.task_id for batch in batches for d in batch]

    patches: list[tuple[Any, str, Callable[..., Any] | None, Callable[..., Any] | None]] = [
        (repo, "add", lambda _, task: _stamp(out, "add.enter", [task.id]), None),
        (repo, "add", None, lambda _r, _, task: _stamp(out, "add.done", [task.id])),
        (repo, "add_many", lambda _, ts: _stamp(out, "insert.flush", [t.id for t in ts]), None),
        (redis_queue, "push", lambda _, ds: _stamp(out, "push.enter", ids_of(ds)), None),
        (redis_queue, "_push_many", lambda _, bs: _stamp(out, "push.flush", pushed(bs)), None),
        (redis_queue, "pop", None, lambda ids, *_, **__: _stamp(out, "pop.reply", ids)),
        (repo, "claim", lambda _, ids, **__: _stamp(out, "claim.enter", ids), claimed),
    ]  # fmt: skip
    for owner, name, before, after in patches:
        _wrap(owner, name, before, after)
    fetch = asyncpg.connection.Connection.fetch

    async def traced_fetch(conn: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        if "claimed" in sql:
            _stamp(out, "claim.send", next(a for a in args if isinstance(a, list)))
        if not sql.startswith("INSERT INTO tasks"):
            return await fetch(conn, sql, *args, **kwargs)
        ids = [row["id"] for row in msgspec.json.decode(args[0])]
        _stamp(out, "insert.send", ids)
        instants = (
            "extract(epoch FROM statement_timestamp()), extract(epoch FROM clock_timestamp())"
        )
        rows = await fetch(conn, f"{sql} RETURNING {instants}", *args, **kwargs)
        began, built = rows[0]
        _stamp(out, "insert.reply", ids)
        _stamp(out, "insert.pg_start", ids, int(began * 1_000_000) * 1000)
        _stamp(out, "insert.pg_row", ids, int(built * 1_000_000) * 1000)
        return []

    asyncpg.connection.Connection.fetch = traced_fetch


def report(lines: Iterable[str]) -> None:
    stamps: dict[str, dict[str, int]] = defaultdict(dict)
    for line in lines:
        step, task_id, ns = line.split()
        stamps[task_id].setdefault(step, int(ns))
    complete = sorted(
        (s for s in stamps.values() if all(step in s for step in STEPS)),
        key=lambda s: s["created_at"],
    )[WARM_UP:]
    print(f"{len(complete)} tasks; µs after created_at (p50, p99), and the step's own p50:")
    for previous, step in zip((None, *STEPS), STEPS, strict=False):
        after = sorted((s[step] - s["created_at"]) / 1000 for s in complete)
        alone = sorted((s[step] - s[previous or step]) / 1000 for s in complete)
        p50, p99 = after[len(after) // 2], after[int(len(after) * 0.99) - 1]
        print(f"  {step:16} {p50:8.0f} {p99:8.0f}   {alone[len(alone) // 2]:6.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--src", default=str(ROOT / "src"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sitecustomize.py").write_text(_SITE)
        env = {**os.environ, "PICKUP_TRACE": str(Path(tmp, "trace")), "PYTHONPATH": tmp}
        env["PYTHONPATH"] += f":{args.src}"
        command = [sys.executable, "-m", "benchmarks.run", "--phases", "latency"]
        run = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        print("\n".join(line for line in run.stdout.splitlines() if "pickup" in line))
        lines = [
            line for path in Path(tmp).glob("trace.*") for line in path.read_text().splitlines()
        ]
    report(lines)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
