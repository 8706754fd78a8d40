"""`taskflow tasks show|cancel ID` and `tasks retry ID`: one task, by its id.

The older `status`, `cancel` and `retry` commands are the same with ``--json`` always on, so
that what scripts read from them does not change.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from taskflow.client import History, Task
from taskflow.entrypoints.cli_api import Exit, add_url, ask, connected
from taskflow.entrypoints.cli_args import add_json, json_object, task_id
from taskflow.entrypoints.cli_output import (
    as_json,
    cell,
    compact,
    console,
    print_json,
    print_lines,
    print_table,
    status_text,
)

ATTEMPTS = ("attempt", "outcome", "worker_id", "started_at", "finished_at", "error")
#: How much of a payload, a result or the metadata ``tasks show`` prints (``--json``: all).
VALUE_SHOWN = 500


def add_show_and_cancel(actions: Any) -> None:
    show = actions.add_parser("show", help="one task: its fields, attempts and last traceback")
    _add_id(show)
    add_json(show, "the task")
    add_url(show)
    show.set_defaults(run=show_task)
    cancel = actions.add_parser("cancel", help="cancel a task (a running one is stopped)")
    _add_id(cancel)
    add_json(cancel, "the task")
    add_url(cancel)
    cancel.set_defaults(run=cancel_task)


def add_aliases(commands: Any) -> None:
    """``status``, ``cancel`` and ``retry``: as before, they print the task as JSON."""
    status = commands.add_parser("status", help="print a task as JSON (tasks show ID --json)")
    _add_id(status)
    add_url(status)
    status.set_defaults(run=show_task, json=True)
    cancel = commands.add_parser("cancel", help="cancel a task (tasks cancel ID --json)")
    _add_id(cancel)
    add_url(cancel)
    cancel.set_defaults(run=cancel_task, json=True)
    retry = commands.add_parser(
        "retry", help="run a FAILED or CANCELLED task again (tasks retry ID --json)"
    )
    _add_id(retry)
    retry.add_argument(
        "--payload",
        type=json_object,
        default=None,
        help="a JSON object to run it with instead of its payload (default: keep it)",
    )
    add_url(retry)
    retry.set_defaults(run=retry_one, json=True)


def _add_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=task_id, help="task id (a UUID)")


def show_task(args: argparse.Namespace) -> int:
    if args.json:
        print_json(ask(args, lambda client: client.get(args.id)))
        return Exit.OK
    with connected(args) as client:
        task = client.get(args.id)
        history = client.history(args.id)
    print_task(task, history)
    return Exit.OK


def cancel_task(args: argparse.Namespace) -> int:
    task = ask(args, lambda client: client.cancel(args.id))
    if args.json:
        print_json(task)
    elif task.cancel_requested:
        print(f"cancel requested: {task.id} is {task.status}; its worker is stopping it")
    else:
        print(f"cancelled {task.id}")
    return Exit.OK


def retry_one(args: argparse.Namespace) -> int:
    task = ask(args, lambda client: client.retry(args.id, args.payload))
    if args.json:
        print_json(task)
    else:
        print(f"retried {task.id}: {task.status} on queue {task.queue}")
    return Exit.OK


def print_task(task: Task, history: History) -> None:
    """The task's fields, its attempts and the traceback of its latest failed one."""
    out = console()
    shown = as_json(task)
    print_lines(out, _fields(shown))
    attempts = as_json(history)["items"]
    if attempts:
        print()
        rows = [[_attempt_cell(item, c) for c in ATTEMPTS] for item in attempts]
        print_table(ATTEMPTS, rows, out=out, right={"attempt"})
    for change in as_json(history)["changes"]:
        print(f"{change['action']} by {change['by']} at {change['at']}", end="")
        print(f" after attempt {change['after_attempt']}")
    failed = [a for a in attempts if a["error"] and a["error"].get("traceback")]
    if failed:
        print(f"\ntraceback of attempt {failed[-1]['attempt']}:")
        print(failed[-1]["error"]["traceback"].rstrip())


def _fields(task: dict[str, Any]) -> Any:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    progress = task["progress"]
    error = task["error"]
    values: list[tuple[str, Any]] = [
        ("id", task["id"]),
        ("type", task["type"]),
        ("status", status_text(task["status"])),
        ("queue", task["queue"]),
        ("priority", task["priority"]),
        (
            "attempts",
            f"{task['attempts']} (retries {task['retry_count']} of {task['max_retries']})",
        ),
        ("cancel_requested", task["cancel_requested"]),
        ("progress", None if progress is None else _progress(progress)),
        ("run_at", task["run_at"]),
        ("created_at", task["created_at"]),
        ("started_at", task["started_at"]),
        ("finished_at", task["finished_at"]),
        ("payload", _clip(compact(task["payload"]))),
        ("metadata", _clip(compact(task["metadata"]))),
        ("result", None if task["status"] != "SUCCESS" else _clip(compact(task["result"]))),
        ("error", None if error is None else f"{error['type']}: {error['message']}"),
    ]
    for name, value in values:
        grid.add_row(Text(name), value if isinstance(value, Text) else Text(cell(value)))
    return grid


def _clip(text: str) -> str:
    return text if len(text) <= VALUE_SHOWN else f"{text[:VALUE_SHOWN]}… (--json shows all)"


def _progress(progress: dict[str, Any]) -> str:
    message = progress["message"]
    return f"{progress['fraction']:.0%}" + (f" {message}" if message else "")


def _attempt_cell(attempt: dict[str, Any], column: str) -> Any:
    value = attempt[column]
    if column == "outcome":
        return status_text(value or "RUNNING")
    if column == "error":
        return "-" if value is None else cell(f"{value['type']}: {value['message']}")
    return cell(value)
