"""`taskflow queues` and `taskflow workers` against a real API and two workers.

They read the API's queues-and-workers routes (GET /api/queues, GET /api/workers, POST
/api/queues/{name}/pause|resume), built on the fleet branch: these tests need it merged.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.integration.conftest import Stack
from tests.integration.processes import run_cli, wait_for


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli([*args, "--url", stack.base_url], stack.env)


def answer(stack: Stack, *args: str) -> Any:
    result = cli(stack, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_workers_lists_the_live_workers(stack: Stack) -> None:
    pids = sorted(p.pid for p in stack.processes if p.args[0] == "worker")

    def listed() -> list[Any] | None:
        workers = answer(stack, "workers")["workers"]
        return workers if sorted(w["pid"] for w in workers) == pids else None

    workers = wait_for(listed, timeout=60, interval=0.2, what="both workers to be listed")
    assert {tuple(w["queues"]) for w in workers} == {("default",)}
    table = cli(stack, "workers")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "HOST", "PID", "VERSION"]
    assert sorted(int(row.split()[2]) for row in rows) == pids


def test_queues_flags_a_queue_with_work_and_no_consumer(stack: Stack) -> None:
    stack.submit({"type": "debug.echo", "payload": {}, "queue": "nobody-serves-this"})

    def flagged() -> dict[str, Any] | None:
        queues = {q["name"]: q for q in answer(stack, "queues")["queues"]}
        queue = queues.get("nobody-serves-this")
        return queue if queue is not None and queue["unconsumed"] else None

    queue = wait_for(flagged, timeout=60, interval=0.2, what="the queue to be flagged")
    assert (queue["ready"], queue["consumers"]) == (1, 0)
    table = cli(stack, "queues")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert rows["nobody-serves-this"][-1] == "unconsumed"


def test_pause_and_resume_a_queue(stack: Stack) -> None:
    paused = cli(stack, "queues", "pause", "default")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "queue default is paused\n"
    assert {q["name"]: q["paused"] for q in answer(stack, "queues")["queues"]}["default"]
    resumed = cli(stack, "queues", "resume", "default", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["paused"] is False
