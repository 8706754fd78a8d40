"""`taskflow submit`, and with ``--wait`` the task followed to its end.

Standard output gets the task as JSON, as it always did (the final task with ``--wait``).
Standard error shows how it goes: each status change, each progress report, then the result
or the error; on a terminal as a live progress bar, elsewhere as one plain line each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from taskflow.client import Client, History, Task, TaskStatus
from taskflow.domain.limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MIN_PRIORITY,
)
from taskflow.entrypoints.cli_api import CommandFailed, Exit, add_url, connected
from taskflow.entrypoints.cli_args import json_object, positive_float
from taskflow.entrypoints.cli_output import compact, error_console, print_json, print_lines

#: The first pause between two polls of a followed task; each is longer, up to the cap.
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 0.5
#: How much of a result the last line on standard error shows (all of it is on stdout).
RESULT_SHOWN = 200

ENDINGS = {
    TaskStatus.SUCCESS: Exit.OK,
    TaskStatus.FAILED: Exit.TASK_FAILED,
    TaskStatus.CANCELLED: Exit.TASK_CANCELLED,
}


def add_submit_command(commands: Any) -> None:
    submit = commands.add_parser("submit", help="submit a task through the API")
    submit.add_argument("type", help="task type, e.g. debug.echo")
    submit.add_argument("--payload", type=json_object, default={}, help="JSON object (default: {})")
    submit.add_argument(
        "--queue",
        default=None,
        help=f"queue to run it on (default: the type's, else {DEFAULT_QUEUE})",
    )
    submit.add_argument(
        "--priority",
        type=int,
        default=None,
        help=f"{MIN_PRIORITY}-{MAX_PRIORITY}, higher runs first "
        f"(default: the type's, else {DEFAULT_PRIORITY})",
    )
    submit.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help=f"retries after failed attempts, 0-{MAX_RETRIES_LIMIT} "
        f"(default: the type's, else {DEFAULT_MAX_RETRIES})",
    )
    submit.add_argument("--delay", type=float, default=None, help="seconds before it may run")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow it to a final state on stderr; the exit status says how it ended "
        "(0 SUCCESS, 3 FAILED, 4 CANCELLED, 5 still running at --timeout)",
    )
    submit.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="how long --wait waits, in seconds (default 60)",
    )
    add_url(submit)
    submit.set_defaults(run=_submit)


def _submit(args: argparse.Namespace) -> int:
    options = {
        key: value
        for key, value in {
            "queue": args.queue,
            "priority": args.priority,
            "max_retries": args.max_retries,
            "delay_seconds": args.delay,
        }.items()
        if value is not None
    }
    submitted: Task | None = None
    try:
        with connected(args) as client:
            submitted = client.submit(args.type, args.payload, **options)
            if not args.wait:
                print_json(submitted)
                return Exit.OK
            view = view_on(error_console())
            task, ended = follow(client, submitted, timeout=args.timeout, view=view)
    except CommandFailed as exc:
        if submitted is None:
            raise
        raise CommandFailed(f"{exc}, while waiting for task {submitted.id}", exc.code) from None
    print_json(task)
    return ENDINGS[task.status] if ended else Exit.STILL_RUNNING


class View(Protocol):
    """What a follower shows of each snapshot of the task, and of its end."""

    def show(self, lines: list[str], task: Task) -> None: ...

    def close(self, line: str | None, task: Task) -> None: ...


#: How often a final task's history is read again for an outcome not in it yet.
FINAL_HISTORY_READS = 5


def follow(
    client: Client,
    task: Task,
    *,
    timeout: float,
    view: View,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Task, bool]:
    """Poll ``task`` until it is final or ``timeout`` seconds have passed, showing each change
    on ``view``; returns its last snapshot, and whether it is final.

    Polls may miss a short state (an attempt that failed and was retried at once), so how each
    attempt ended comes from the task's history, read when an attempt has ended since the last
    one shown. Only the attempts the poll read as ended are shown: the history, read after it,
    may have the next one ended too, whose line comes after the poll's own ("PROCESSING:
    attempt 2"), once a later poll reads it ended."""
    deadline = clock() + timeout
    pause = FIRST_POLL_SECONDS
    shown_ends = 0
    view.show(changes(None, task), task)
    try:
        while not task.done:
            left = deadline - clock()
            if left <= 0:
                break
            sleep(min(pause, left))
            pause = min(pause * 1.5, MAX_POLL_SECONDS)
            before, task = task, client.get(task.id)
            lines = changes(before, task)
            if _ended(task) > shown_ends:
                ends = attempt_ends(client.history(task.id), after=shown_ends, upto=_ended(task))
                shown_ends += len(ends)
                lines = [*ends, *lines]
            view.show(lines, task)
        # A task read as final may be read before its last attempt's outcome is in its history:
        # read that again, a few times, so no ending goes unshown.
        for read in range(FINAL_HISTORY_READS if task.done else 0):
            if _ended(task) <= shown_ends:
                break
            if read:
                sleep(FIRST_POLL_SECONDS)
            ends = attempt_ends(client.history(task.id), after=shown_ends, upto=_ended(task))
            shown_ends += len(ends)
            view.show(ends, task)
    except BaseException:  # an error or Ctrl-C: the bar stops, and main says what happened
        view.close(None, task)
        raise
    view.close(ending(task, timeout), task)
    return task, task.done


def _ended(task: Task) -> int:
    # How many of its attempts have ended: all but the one running now.
    return task.attempts - 1 if task.status is TaskStatus.PROCESSING else task.attempts


def attempt_ends(history: History, *, after: int, upto: int) -> list[str]:
    """A line for each attempt past the first ``after`` and up to the ``upto``-th that has
    ended: how it ended."""
    lines = []
    for attempt in history.items[after:upto]:
        if attempt.outcome is None:
            break
        error = "" if attempt.error is None else f": {attempt.error.type}: {attempt.error.message}"
        lines.append(f"attempt {attempt.attempt} {attempt.outcome}{error}")
    return lines


def changes(before: Task | None, after: Task) -> list[str]:
    """A line for each change from ``before`` to ``after`` a poll can see, for people."""
    if before is None:
        return [f"task {after.id} {after.status} on queue {after.queue}"]
    lines = []
    moved = after.status != before.status or after.attempts != before.attempts
    if moved and after.status is TaskStatus.PROCESSING:
        lines.append(f"PROCESSING: attempt {after.attempts}")
    elif moved and after.status is TaskStatus.PENDING:
        retried = after.retry_count > before.retry_count
        lines.append(
            f"PENDING: retry {after.retry_count} of {after.max_retries}" if retried else "PENDING"
        )
    if after.cancel_requested and not before.cancel_requested:
        lines.append("cancel requested")
    if after.progress is not None and after.progress != before.progress:
        message = f" {after.progress.message}" if after.progress.message else ""
        lines.append(f"progress {after.progress.fraction:.0%}{message}")
    return lines


def ending(task: Task, timeout: float) -> str:
    """The last line: the result, the error, or that the task is not done yet."""
    if task.status is TaskStatus.SUCCESS:
        result = compact(task.result)
        if len(result) > RESULT_SHOWN:
            result = result[:RESULT_SHOWN] + "…"
        return f"SUCCESS after {_attempts(task)}: {result}"
    if task.status is TaskStatus.FAILED and task.error is not None:
        return f"FAILED after {_attempts(task)}: {task.error.type}: {task.error.message}"
    if task.done:
        return f"{task.status} after {_attempts(task)}"
    return f"still {task.status} after {timeout:g}s; it goes on (taskflow tasks show {task.id})"


def _attempts(task: Task) -> str:
    return f"{task.attempts} attempt{'' if task.attempts == 1 else 's'}"


def view_on(out: Console) -> View:
    """A live progress bar on a terminal; one plain line per change anywhere else."""
    return LiveView(out) if out.is_terminal else PlainView(out)


class PlainView:
    def __init__(self, out: Console) -> None:
        self._out = out

    def show(self, lines: list[str], task: Task) -> None:
        for line in lines:
            print_lines(self._out, Text(line))

    def close(self, line: str | None, task: Task) -> None:
        if line is not None:
            print_lines(self._out, Text(line))


class LiveView:
    """Each change printed above a bar that fills as the handler reports its fraction."""

    def __init__(self, out: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=out,
        )
        self._bar: TaskID | None = None

    def show(self, lines: list[str], task: Task) -> None:
        if self._bar is None:
            self._progress.start()
            self._bar = self._progress.add_task(str(task.status), total=None)
        for line in lines:
            self._progress.console.print(Text(line))
        fraction = None if task.progress is None else task.progress.fraction
        self._progress.update(
            self._bar,
            description=str(task.status),
            total=None if fraction is None else 1.0,
            completed=fraction or 0.0,
        )

    def close(self, line: str | None, task: Task) -> None:
        if self._bar is not None:
            if task.status is TaskStatus.SUCCESS:
                self._progress.update(self._bar, total=1.0, completed=1.0)
            self._progress.update(self._bar, description=str(task.status))
            self._progress.stop()
        if line is not None:
            self._progress.console.print(Text(line))
