"""The operators' commands as people run them: real `taskflow` processes against a real API
and worker on PostgreSQL and Redis (one stack for the module)."""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.integration.conftest import ROOT, Stack, StackFactory
from tests.integration.processes import TASKFLOW, run_cli, wait_for

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LATER = {"delay_seconds": 3600}


@pytest.fixture(scope="module")
def ops(module_stack_factory: StackFactory) -> Stack:
    stack = module_stack_factory(
        TASKFLOW_TASKS="tests.integration.gated_tasks:tasks", PYTHONPATH=ROOT
    )
    stack.start_api()
    stack.start_worker("--concurrency", "4")
    return stack


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli([*args, "--url", stack.base_url], stack.env)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskflow"), lines
    return lines[0]


class Follower:
    """`taskflow submit … --wait` running, its stderr read as it comes (a pipe or a pty)."""

    def __init__(self, stack: Stack, args: list[str], *, terminal: bool = False) -> None:
        env = {**stack.env, "TERM": "xterm", "COLUMNS": "100"}
        command = [TASKFLOW, "submit", *args, "--wait", "--url", stack.base_url]
        self._chunks: queue.Queue[str] = queue.Queue()
        self.seen = ""
        if terminal:
            master, slave = pty.openpty()
            self.popen = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=slave, text=True
            )
            os.close(slave)
            reader = threading.Thread(target=self._read_pty, args=(master,), daemon=True)
        else:
            self.popen = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            assert self.popen.stderr is not None
            reader = threading.Thread(target=self._read, args=(self.popen.stderr,), daemon=True)
        reader.start()
        self._reader = reader

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._chunks.put(line)

    def _read_pty(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the other end is closed: the command has ended
                break
            if not data:
                break
            self._chunks.put(data.decode(errors="replace"))
        os.close(master)

    def text(self) -> str:
        while not self._chunks.empty():
            self.seen += self._chunks.get()
        return ANSI.sub("", self.seen)

    def wait_for(self, condition: Callable[[str], Any], what: str) -> None:
        wait_for(lambda: condition(self.text()), timeout=60, what=f"{what} in:\n{self.text()}")

    def end(self) -> tuple[int, dict[str, Any]]:
        # Not communicate(): it would read stderr too, taking lines from the reader.
        assert self.popen.stdout is not None
        with self.popen.stdout:
            out = self.popen.stdout.read()
        self.popen.wait(timeout=60)
        self._reader.join(timeout=30)
        assert not self._reader.is_alive(), "stderr was not closed"
        return self.popen.returncode, json.loads(out)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[list[Path]]:
    made = [tmp_path / f"gate-{n}" for n in range(2)]
    yield made
    for gate in made:  # whatever happened, the task can end
        gate.touch()


def gated(gates: list[Path]) -> list[str]:
    return ["gated.steps", "--payload", json.dumps({"gates": [str(g) for g in gates]})]


def submitted_id(follower: Follower) -> str:
    follower.wait_for(lambda text: text.startswith("task "), "the submitted task")
    return follower.text().split()[1]


def test_submit_wait_reports_each_status_and_progress_then_the_result(
    ops: Stack, gates: list[Path]
) -> None:
    follower = Follower(ops, gated(gates))
    follower.wait_for(lambda text: "progress 0% waiting at gate 1\n" in text, "gate 1")
    gates[0].touch()
    follower.wait_for(lambda text: "progress 50% waiting at gate 2\n" in text, "gate 2")
    gates[1].touch()
    code, task = follower.end()
    assert code == 0, follower.text()
    assert (task["status"], task["result"]) == ("SUCCESS", {"gates": 2})
    lines = follower.text().splitlines()
    assert lines[0] == f"task {task['id']} PENDING on queue default"
    assert "PROCESSING: attempt 1" in lines
    assert lines[-2:] == ["attempt 1 SUCCESS", 'SUCCESS after 1 attempt: {"gates":2}']


def test_submit_wait_draws_a_progress_bar_on_a_terminal(ops: Stack, gates: list[Path]) -> None:
    follower = Follower(ops, gated(gates), terminal=True)
    follower.wait_for(lambda text: "waiting at gate 1" in text, "gate 1")
    gates[0].touch()
    follower.wait_for(lambda text: re.search(r"━+\s+50%", text), "a bar at 50%")
    gates[1].touch()
    code, task = follower.end()
    assert code == 0, follower.text()
    assert task["status"] == "SUCCESS"
    shown = follower.text()
    assert re.search(r"SUCCESS\s+━+\s+100%", shown), shown
    assert 'SUCCESS after 1 attempt: {"gates":2}' in shown


def test_submit_wait_exits_4_when_the_task_is_cancelled(ops: Stack, gates: list[Path]) -> None:
    follower = Follower(ops, gated(gates))
    task_id = submitted_id(follower)
    follower.wait_for(lambda text: "progress 0%" in text, "the task to run")
    cancelled = cli(ops, "tasks", "cancel", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == (
        f"cancel requested: {task_id} is PROCESSING; its worker is stopping it\n"
    )
    code, task = follower.end()
    assert code == 4, follower.text()
    assert task["status"] == "CANCELLED"
    assert follower.text().splitlines()[-2:] == ["attempt 1 CANCELLED", "CANCELLED after 1 attempt"]


def test_submit_wait_exits_5_when_its_timeout_runs_out(ops: Stack, gates: list[Path]) -> None:
    result = run_cli(
        ["submit", *gated(gates), "--wait", "--timeout", "1", "--url", ops.base_url], ops.env
    )
    assert result.returncode == 5, result.stderr
    task = json.loads(result.stdout)
    assert task["status"] in ("PENDING", "PROCESSING")
    assert result.stderr.splitlines()[-1].startswith(f"still {task['status']} after 1s")
    shown = cli(ops, "cancel", task["id"])  # the older command: JSON, as before
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == task["id"]


def test_submit_wait_exits_3_and_shows_the_error_when_the_task_fails(ops: Stack) -> None:
    payload = '{"fail_attempts": 5, "message": "disk [full]"}'
    result = cli(ops, "submit", "debug.fail", "--payload", payload, "--max-retries", "1", "--wait")
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["status"] == "FAILED"
    lines = result.stderr.splitlines()
    # Between the two, "PENDING: retry 1 of 1" when a poll saw the task waiting for its retry.
    assert "attempt 1 RETRY: DebugFailure: disk [full]" in lines
    assert lines[-2:] == [
        "attempt 2 FAILED: DebugFailure: disk [full]",
        "FAILED after 2 attempts: DebugFailure: disk [full]",
    ]


def test_show_retry_and_list_a_failed_task(ops: Stack) -> None:
    run = str(uuid.uuid4())
    failing = {"fail_attempts": 1}
    task = ops.submit(
        {"type": "debug.fail", "payload": failing, "max_retries": 0, "metadata": {"run": run}}
    )
    ops.wait_status([task["id"]], {"FAILED"})

    shown = cli(ops, "tasks", "show", task["id"])
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(None, 1) for line in shown.stdout.split("\n\n")[0].splitlines())
    assert fields["status"] == "FAILED"
    assert fields["error"] == "DebugFailure: debug.fail: failing on purpose"
    assert "traceback of attempt 1:" in shown.stdout
    assert shown.stdout.rstrip().endswith("DebugFailure: debug.fail: failing on purpose")

    retried = cli(ops, "tasks", "retry", task["id"])
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"retried {task['id']}: PENDING on queue default\n"
    [done] = ops.wait_status([task["id"]])
    assert (done["status"], done["attempts"]) == ("SUCCESS", 2)  # its second attempt passes

    listed = cli(ops, "tasks", "list", "--metadata", f"run={run}")
    assert listed.returncode == 0, listed.stderr
    _, row = listed.stdout.splitlines()
    assert row.split()[:5] == [task["id"], "debug.fail", "default", "SUCCESS", "2"]

    status = cli(ops, "status", task["id"])  # the older command: the task as JSON
    assert json.loads(status.stdout)["status"] == "SUCCESS"
    again = cli(ops, "retry", task["id"])
    assert again.returncode == 1
    assert "HTTP 409" in one_error_line(again)


def test_cancel_a_waiting_task(ops: Stack) -> None:
    task = ops.submit({"type": "debug.echo", "payload": {}, **LATER})
    cancelled = cli(ops, "tasks", "cancel", task["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled {task['id']}\n"
    as_json = cli(ops, "tasks", "show", task["id"], "--json")
    assert json.loads(as_json.stdout)["status"] == "CANCELLED"
    twice = cli(ops, "tasks", "cancel", task["id"])
    assert twice.returncode == 1
    assert "HTTP 409" in one_error_line(twice)


def test_a_long_row_is_not_cut_in_a_pipe(ops: Stack) -> None:
    long_queue = "operators-" + "x" * 54  # 64 characters, the longest name allowed
    task = ops.submit({"type": "debug.echo", "payload": {}, "queue": long_queue, **LATER})
    listed = cli(ops, "tasks", "list", "--queue", long_queue)
    assert listed.returncode == 0, listed.stderr
    _, row = listed.stdout.splitlines()
    assert len(row) > 100
    assert row.split() == [
        task["id"], "debug.echo", long_queue, "PENDING", "0", task["created_at"]
    ]  # fmt: skip
    assert cli(ops, "tasks", "cancel", task["id"]).returncode == 0


@pytest.mark.parametrize("command", [["tasks", "show"], ["tasks", "cancel"], ["tasks", "retry"]])
def test_unknown_and_malformed_ids(ops: Stack, command: list[str]) -> None:
    unknown = cli(ops, *command, str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert "HTTP 404" in one_error_line(unknown)
    malformed = cli(ops, *command, "not-an-id")
    assert malformed.returncode == 2
    assert "a task id is a UUID, got 'not-an-id'" in one_error_line(malformed)


@pytest.mark.parametrize(
    "command",
    [["tasks", "list"], ["tasks", "show", str(uuid.uuid4())], ["schedules"], ["submit", "x.y"]],
    ids=lambda command: " ".join(command[:2]),  # no random id: xdist workers collect alike
)
def test_an_unreachable_api(command: list[str], ops: Stack) -> None:
    result = run_cli([*command, "--url", "http://127.0.0.1:9"], ops.env)
    assert result.returncode == 1
    assert "cannot reach the API at http://127.0.0.1:9" in one_error_line(result)
