"""How late delayed ids come out of an idle Redis queue, at the level of the queue alone.

    .venv/bin/python -m benchmarks.due_lateness [--redis URL] [--ids 200] [--poppers 1]

Idle poppers wait in ``pop`` as a worker does (a timeout of one second, again and again)
while ids are pushed, a few every 50 ms, each due 0.3 to 0.8 s after its push: many arrive
due sooner than ids already waiting. Lateness is the time from an id's run_at until a pop
returned it; its p50, p99 and maximum are printed. Keys go under a prefix of its own, deleted
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from taskflow.adapters.redis import RedisTaskQueue, connect
from taskflow.domain.ports import Dispatch

QUEUE = "lateness"
POLL = 1.0  # what a worker passes to pop (poll_seconds)


async def pop_until(
    queue: RedisTaskQueue, due: dict[UUID, datetime], late: list[float], count: int
) -> None:
    while len(late) < count:
        for task_id in await queue.pop([QUEUE], limit=10, timeout=POLL):
            late.append((datetime.now(UTC) - due[task_id]).total_seconds() * 1000)


async def push_all(queue: RedisTaskQueue, due: dict[UUID, datetime], count: int) -> None:
    rand = random.Random(10)
    for _ in range(count):
        run_at = datetime.now(UTC) + timedelta(seconds=rand.uniform(0.3, 0.8))
        task_id = uuid.uuid4()
        due[task_id] = run_at
        await queue.push([Dispatch(task_id, QUEUE, 5, run_at)])
        await asyncio.sleep(rand.uniform(0.0, 0.1))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, count: int, poppers: int) -> list[float]:
    prefix = f"lateness:{uuid.uuid4().hex[:12]}"
    queues = [RedisTaskQueue(connect(url), prefix=prefix) for _ in range(poppers + 1)]
    due: dict[UUID, datetime] = {}
    late: list[float] = []
    try:
        await asyncio.gather(
            push_all(queues[0], due, count),
            *(pop_until(q, due, late, count) for q in queues[1:]),
        )
    finally:
        for q in queues:
            await q.close()
        client = connect(url)
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--poppers", type=int, default=1)
    args = parser.parse_args()
    late = asyncio.run(measure(args.redis, args.ids, args.poppers))
    print(
        f"{len(late)} delayed ids, {args.poppers} idle popper(s): lateness after run_at "
        f"p50 {statistics.median(late):.1f} ms, p99 {quantile(late, 0.99):.1f} ms, "
        f"max {max(late):.1f} ms, min {min(late):.1f} ms"
    )


if __name__ == "__main__":
    main()
