"""SIGUSR1 asks a real worker what it is doing: its log says where each task of its event loop
waits and what each thread runs, and the worker carries on as if nothing happened."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import StackFactory
from tests.integration.processes import wait_for
from tests.integration.test_faults_workers import events, fault_stack, workers

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BOUND = 60.0
EVENT = "what this process is doing"


def test_sigusr1_logs_where_the_worker_stands_and_it_works_on(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = fault_stack(stack_factory, workers=1)
    (worker,) = workers(stack)
    gate = tmp_path / "gate"
    task_id = stack.submit({"type": "fault.gate", "payload": {"path": str(gate)}})["id"]
    wait_for(lambda: stack.task(task_id)["status"] == "PROCESSING", timeout=BOUND, what="the task")

    worker.signal(signal.SIGUSR1)

    def reported() -> dict[str, Any] | None:
        return next((e for e in events(worker) if e["event"] == EVENT), None)

    report = wait_for(reported, timeout=BOUND, what=f"a line {EVENT!r}")
    handler = [w for w in report["waiting_on"] if "gate (fault_tasks.py:" in w]
    assert handler, report["waiting_on"]
    assert handler[0].startswith("Worker._execute (worker.py:"), handler
    assert any(t.startswith("taskflow-leases: ") for t in report["threads"]), report["threads"]

    gate.touch()
    [done] = stack.wait_status([task_id], timeout=BOUND)
    assert done["status"] == "SUCCESS", f"{done}\n{stack.dump_logs()}"
    assert worker.alive()
