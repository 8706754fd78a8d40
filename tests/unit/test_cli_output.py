"""How `taskflow` prints: plain, parseable and never cut in a pipe; coloured tables on a
terminal; what `submit --wait` says of each change; queues and workers as tables."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from rich.console import Console

from taskflow.client import History, Task
from taskflow.entrypoints import cli_fleet, cli_output, cli_submit
from tests.unit.client_fakes import TASK_ID, attempt_json, task_json

LONG_QUEUE = "q" + "-long" * 12  # 61 characters: a row well past 80 columns


def pipe_output(capsys: pytest.CaptureFixture[str], print_it: Any) -> list[str]:
    print_it()
    return capsys.readouterr().out.splitlines()


def test_a_table_in_a_pipe_is_plain_and_not_cut_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what a narrow terminal would have left behind
    monkeypatch.setenv("FORCE_COLOR", "1")  # set for every job by some CI systems
    rows = [[TASK_ID, "[bold]x[/bold]", LONG_QUEUE, "PENDING"], ["-", "y", "q", "FAILED"]]
    lines = pipe_output(capsys, lambda: cli_output.print_table(("id", "t", "q", "s"), rows))
    assert [line.split() for line in lines] == [["ID", "T", "Q", "S"], *rows]
    assert len(lines[1]) > 80
    assert lines[1].index(LONG_QUEUE) == lines[0].index("Q")  # columns line up
    assert all(line == line.rstrip() for line in lines)
    assert "\x1b" not in "".join(lines)


def test_a_table_on_a_terminal_has_colours_and_a_rule() -> None:
    screen = io.StringIO()
    out = Console(file=screen, force_terminal=True, width=120, color_system="standard")
    rows = [[TASK_ID, cli_output.status_text("FAILED")]]
    cli_output.print_table(("id", "status"), rows, out=out)
    text = screen.getvalue()
    assert "\x1b[" in text  # colour
    assert "─" in text  # the rule under the header
    assert TASK_ID in text


def test_the_queues_fit_a_terminal_of_100_columns_without_cutting_a_word() -> None:
    screen = io.StringIO()
    out = Console(file=screen, force_terminal=True, width=100, color_system=None)
    answer = {"queues": [{**QUEUES["queues"][0], "name": "mail", "unconsumed": True}]}
    rows = [cli_fleet._queue_row(queue) for queue in answer["queues"]]
    cli_output.print_table(cli_fleet.QUEUES, rows, out=out, right=cli_fleet.NUMBERS)
    text = screen.getvalue()
    assert "…" not in text
    assert "unconsumed" in text
    assert "OLDEST" in text
    assert "READY" in text


def test_a_terminal_shows_timestamps_to_the_second_and_never_cuts_them() -> None:
    screen = io.StringIO()
    out = Console(file=screen, force_terminal=True, width=80, color_system=None)
    stamp = "2026-11-30T20:06:51.658677Z"
    cli_output.print_table(("id", "created_at", "error"), [[TASK_ID, stamp, "x " * 40]], out=out)
    text = screen.getvalue()
    assert "2026-11-30 20:06:51Z" in text
    assert TASK_ID in text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (4.25, "4.2s"), (59.96, "60.0s"), (725, "12m05s"), (12_000, "3h20m")],
)
def test_ages_for_people(seconds: float | None, shown: str) -> None:
    assert cli_output.age(seconds) == shown


def test_since_counts_from_now() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    then = (now - timedelta(days=2, hours=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert cli_output.since(then, now) == "2d04h"
    assert cli_output.since(None, now) == "-"


def task(status: str = "PENDING", **changes: Any) -> Task:
    return msgspec.convert(task_json(status, **changes), Task, strict=False)


def test_each_change_of_a_followed_task_is_one_line() -> None:
    pending = task()
    running = task("PROCESSING", attempts=1)
    halfway = task("PROCESSING", attempts=1, progress={"fraction": 0.5, "message": "rows"})
    error = {"type": "OSError", "message": "disk full"}
    again = task("PENDING", attempts=1, retry_count=1, error=error)
    second = task("PROCESSING", attempts=2, error=error, cancel_requested=True)
    steps = [None, pending, running, halfway, halfway, again, second]
    said = [cli_submit.changes(a, b) for a, b in itertools.pairwise(steps)]
    assert said == [
        [f"task {TASK_ID} PENDING on queue default"],
        ["PROCESSING: attempt 1"],
        ["progress 50% rows"],
        [],
        ["PENDING: retry 1 of 3"],
        ["PROCESSING: attempt 2", "cancel requested"],
    ]


def test_how_each_attempt_ended_comes_from_the_history() -> None:
    failed = {"type": "OSError", "message": "disk full"}
    items = [attempt_json(1, "RETRY", failed), attempt_json(2, "RELEASED"), attempt_json(3, None)]
    history = msgspec.convert({"items": items, "changes": []}, History, strict=False)
    assert cli_submit.attempt_ends(history, after=0, upto=3) == [
        "attempt 1 RETRY: OSError: disk full",
        "attempt 2 RELEASED",
    ]
    assert cli_submit.attempt_ends(history, after=1, upto=3) == ["attempt 2 RELEASED"]
    assert cli_submit.attempt_ends(history, after=0, upto=1) == [
        "attempt 1 RETRY: OSError: disk full"
    ]  # the task read last had ended one attempt: the history, read after it, has more


def test_the_last_line_gives_the_result_or_the_error() -> None:
    done = task("SUCCESS", attempts=1, result={"rows": 3})
    assert cli_submit.ending(done, 60) == 'SUCCESS after 1 attempt: {"rows":3}'
    failed = task("FAILED", attempts=2, error={"type": "Fail", "message": "no"})
    assert cli_submit.ending(failed, 60) == "FAILED after 2 attempts: Fail: no"
    assert cli_submit.ending(task("CANCELLED", attempts=1), 60) == "CANCELLED after 1 attempt"
    waiting = cli_submit.ending(task("PROCESSING"), 2.5)
    assert waiting == f"still PROCESSING after 2.5s; it goes on (taskflow tasks show {TASK_ID})"
    huge = cli_submit.ending(task("SUCCESS", result="x" * 1000), 60)
    assert len(huge) < 300
    assert huge.endswith("…")


QUEUES = {
    "queues": [
        {
            "name": "default",
            "ready": 12,
            "delayed": 3,
            "processing": 4,
            "oldest_ready_age_seconds": 75.5,
            "throughput_last_minute": {"succeeded": 120, "failed": 2},
            "limits": {"rate": "10/s", "concurrency": None},
            "paused": False,
            "consumers": 2,
            "unconsumed": False,
        },
        {
            "name": LONG_QUEUE,
            "ready": 5,
            "delayed": 0,
            "processing": 0,
            "oldest_ready_age_seconds": 3.0,
            "throughput_last_minute": {"succeeded": 0, "failed": 0},
            "limits": {"rate": None, "concurrency": 3},
            "paused": True,
            "consumers": 0,
            "unconsumed": True,
        },
    ]
}


def test_queues_table(capsys: pytest.CaptureFixture[str]) -> None:
    lines = pipe_output(capsys, lambda: cli_fleet.print_queues(QUEUES, as_json_text=False))
    assert [line.split() for line in lines] == [
        [c.upper() for c in cli_fleet.QUEUES],
        ["default", "12", "3", "4", "1m15s", "120", "2", "10/s", "-", "2", "ok"],
        [LONG_QUEUE, "5", "0", "0", "3.0s", "0", "0", "-", "3", "0", "paused,unconsumed"],
    ]


def test_queues_json_is_the_apis_answer(capsys: pytest.CaptureFixture[str]) -> None:
    cli_fleet.print_queues(QUEUES, as_json_text=True)
    assert json.loads(capsys.readouterr().out) == QUEUES


def test_workers_table(capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    stamp = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    answer = {
        "workers": [
            {
                "id": "vm:4242:ab12cd",
                "host": "vm",
                "pid": 4242,
                "version": "0.1.0",
                "queues": ["billing", "default"],
                "concurrency": 16,
                "running": [TASK_ID],
                "running_count": 1,
                "started_at": stamp,
                "last_seen_at": stamp,
            }
        ]
    }
    lines = pipe_output(capsys, lambda: cli_fleet.print_workers(answer, as_json_text=False))
    assert lines[0].split() == [c.upper() for c in cli_fleet.WORKERS]
    row = lines[1].split()
    assert row[:7] == ["vm:4242:ab12cd", "vm", "4242", "0.1.0", "billing,default", "16", "1"]
    assert row[7].startswith("5m0")
