"""Chaos: 1,000 short tasks through two APIs and three workers while workers are SIGKILLed every
second or two and Redis is once restarted empty. A ledger outside the queue and the store counts
executions, in the spirit of Jepsen's total-queue checker.

Run alone with ``make chaos`` (prints the figures). It fails unless lost = 0 and
stale_accepted = 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory
from tests.integration.fault_tasks import read_ledger
from tests.integration.processes import Process, free_port, wait_for, wait_http_ok
from tests.integration.servers import RedisServer

ROOT = str(Path(__file__).resolve().parents[2])
TASKS = 1000
WORKERS = 3


class Chaos:
    """Kills a random worker every one to two seconds and starts a replacement."""

    def __init__(self, stack: Stack, workers: list[Process]) -> None:
        self.stack = stack
        self.workers = workers
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(7)
        while not self._stop.wait(rng.uniform(1.0, 2.0)):
            victim = rng.randrange(len(self.workers))
            self.workers[victim].popen.kill()
            self.workers[victim].popen.wait(10)
            self.kills += 1
            self.workers[victim] = self.stack.start_worker()


def _submit_all(
    urls: list[str], ledger: Path, redis: RedisServer, stack: Stack
) -> tuple[list[str], float, set[str]]:
    """Submit TASKS tasks over both APIs; restart Redis empty halfway.

    Returns the accepted ids, the time of the restart, and the tasks PENDING just before it
    (the ones Redis held and lost).
    """
    body = {"type": "fault.ledger", "payload": {"ledger": str(ledger), "sleeps": [0.05]}}
    restarted_at = 0.0

    def submit(n: int) -> str:
        response = httpx.post(f"{urls[n % len(urls)]}/api/tasks", json=body, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    ids: list[str] = []
    pending: set[str] = set()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(0, TASKS, 100):
            ids += pool.map(submit, range(start, start + 100))
            if start == TASKS // 2:
                pending = {str(r["id"]) for r in _final_rows(stack) if r["status"] == "PENDING"}
                restarted_at = time.time()
                redis.restart()  # empty: queued, delayed and backing-off ids are all gone
    return ids, restarted_at, pending


def _final_rows(stack: Stack) -> list[dict[str, Any]]:
    url = stack.env["TASKFLOW_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT t.id, t.status, t.attempts, t.retry_count, t.result, t.created_at,"
                " a.started_at AS first,"
                " (SELECT count(*) FROM attempts f WHERE f.task_id = t.id"
                "  AND f.outcome IN ('WORKER_LOST', 'RETRY')) AS failed_attempts"
                " FROM tasks t LEFT JOIN attempts a ON a.task_id = t.id AND a.attempt = 1"
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    return asyncio.run(fetch())


@pytest.mark.chaos
def test_chaos_loses_nothing_and_accepts_no_stale_result(
    stack_factory: StackFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = stack_factory(
        TASKFLOW_REDIS_URL=redis_server.url,
        TASKFLOW_TASKS="tests.integration.fault_tasks:tasks",
        PYTHONPATH=ROOT,
        TASKFLOW_LEASE_SECONDS="2",
        TASKFLOW_HEARTBEAT_SECONDS="0.5",
        TASKFLOW_SWEEP_SECONDS="0.5",
        TASKFLOW_LOG_LEVEL="WARNING",
    )
    stack.start_api()
    second_port = free_port()
    second = Process(
        ["api"], {**stack.env, "TASKFLOW_PORT": str(second_port)}, stack.logs / "api-b.log"
    )
    stack.processes.append(second)
    second_url = f"http://127.0.0.1:{second_port}"
    wait_http_ok(f"{second_url}/health/live", timeout=60, process=second)
    ledger = tmp_path / "ledger.txt"

    workers = [stack.start_worker() for _ in range(WORKERS)]
    with Chaos(stack, workers) as chaos:
        ids, restarted_at, wiped = _submit_all(
            [stack.base_url, second_url], ledger, redis_server, stack
        )

        def settled() -> list[dict[str, Any]] | None:
            rows = _final_rows(stack)
            return rows if sum(r["status"] == "SUCCESS" for r in rows) >= len(ids) else None

        # On a time-out the stragglers are counted as lost below, with the figures printed.
        with contextlib.suppress(AssertionError):
            wait_for(settled, timeout=300, interval=1, what="every accepted task to succeed")
    rows = {str(r["id"]): r for r in _final_rows(stack)}

    entries = read_ledger(ledger)
    starts = Counter(e.task_id for e in entries if e.event == "start")
    # One start per (task, attempt): no attempt ever ran in two places at once.
    twice = [
        k
        for k, n in Counter((e.task_id, e.attempt) for e in entries if e.event == "start").items()
        if n > 1
    ]
    # One retry per expiry: every failed attempt counted once, however many reapers ran.
    miscounted = [
        i
        for i, r in rows.items()
        if r["status"] == "SUCCESS" and r["retry_count"] != r["failed_attempts"]
    ]
    lost = [i for i in ids if i not in rows or rows[i]["status"] != "SUCCESS"]
    reexecuted = sum(1 for i in ids if starts[i] > 1)
    never_ran = [i for i in ids if starts[i] == 0]
    # A result is stale when it was written by an attempt other than the last one.
    stale = [i for i, r in rows.items() if r["result"] and _attempt_of(r) != r["attempts"]]
    # Recovery: how long after Redis came back empty every task it had lost was running again.
    restart = datetime.fromtimestamp(restarted_at, UTC)
    resumed = [rows[i]["first"] for i in wiped if rows[i]["first"] is not None]
    recovery_s = max((at - restart).total_seconds() for at in resumed) if resumed else 0.0
    print(
        f"\nlost={len(lost)} reexecuted={reexecuted} stale_accepted={len(stale)} "
        f"recovery_s={recovery_s:.2f} tasks={len(ids)} wiped={len(wiped)} kills={chaos.kills} "
        f"executions={sum(starts.values())}"
    )
    assert not lost, f"{len(lost)} lost, e.g. {lost[:5]}\n{stack.dump_logs()}"
    assert not never_ran
    assert not stale, stale[:5]
    assert not twice, twice[:5]
    assert not miscounted, miscounted[:5]
    assert chaos.kills >= 3


def _attempt_of(row: dict[str, Any]) -> int:
    result = row["result"]
    return int((json.loads(result) if isinstance(result, str) else result)["attempt"])
