"""`taskflow queues` and `taskflow workers`: how work flows, and who does it.

Both read the API's ``GET /api/queues`` and ``GET /api/workers`` through the client's
``queues()`` and ``workers()``; ``queues pause|resume NAME`` act on one queue.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from taskflow.client import Queue
from taskflow.entrypoints.cli_api import Exit, add_url, ask
from taskflow.entrypoints.cli_args import Parser, add_json, queue_name
from taskflow.entrypoints.cli_output import age, as_json, cell, print_json, print_table, since

QUEUES = (
    "queue",
    "ready",
    "delayed",
    "processing",
    "oldest_ready",
    "succeeded_1m",
    "failed_1m",
    "rate",
    "max_running",
    "consumers",
    "flow",
)
WORKERS = (
    "id",
    "host",
    "pid",
    "version",
    "queues",
    "concurrency",
    "running",
    "started",
    "last_seen",
)
NUMBERS = {"ready", "delayed", "processing", "succeeded_1m", "failed_1m", "consumers", "running"}


def add_fleet_commands(commands: Any) -> None:
    queues = commands.add_parser(
        "queues", help="per queue: waiting and running tasks, throughput, limits, consumers"
    )
    add_json(queues, "the queues")
    add_url(queues)
    queues.set_defaults(run=_queues)
    actions = queues.add_subparsers(
        dest="action",
        required=False,
        metavar="ACTION",
        parser_class=Parser,
        help="pause NAME: start none of its tasks (it still takes submissions); resume NAME",
    )
    for action, verb in (("pause", "start none of its tasks until resumed"), ("resume", "")):
        acting = actions.add_parser(action, help=f"{action} a queue: {verb or 'start again'}")
        acting.add_argument("name", type=queue_name, help="the queue's name")
        add_json(acting, "the queue", nested=True)
        add_url(acting, nested=True)
        acting.set_defaults(run=_pause if action == "pause" else _resume)

    workers = commands.add_parser(
        "workers", help="the live workers: host, pid, queues, concurrency, running tasks"
    )
    add_json(workers, "the workers")
    add_url(workers)
    workers.set_defaults(run=_workers)


def _queues(args: argparse.Namespace) -> int:
    found = ask(args, lambda client: client.queues())
    print_queues(as_json({"queues": found}), as_json_text=args.json)
    return Exit.OK


def _pause(args: argparse.Namespace) -> int:
    return _act(args, ask(args, lambda client: client.pause_queue(args.name)))


def _resume(args: argparse.Namespace) -> int:
    return _act(args, ask(args, lambda client: client.resume_queue(args.name)))


def _act(args: argparse.Namespace, queue: Queue) -> int:
    shown = as_json(queue)
    if args.json:
        print_json(shown)
    else:
        print(f"queue {shown['name']} is {'paused' if shown['paused'] else 'running'}")
    return Exit.OK


def _workers(args: argparse.Namespace) -> int:
    found = ask(args, lambda client: client.workers())
    print_workers(as_json({"workers": found}), as_json_text=args.json)
    return Exit.OK


def print_queues(answer: dict[str, Any], *, as_json_text: bool) -> None:
    """``answer`` is ``GET /api/queues``'s body."""
    if as_json_text:
        print_json(answer)
        return
    print_table(QUEUES, [_queue_row(queue) for queue in answer["queues"]], right=NUMBERS)


def print_workers(answer: dict[str, Any], *, as_json_text: bool) -> None:
    """``answer`` is ``GET /api/workers``'s body."""
    if as_json_text:
        print_json(answer)
        return
    print_table(WORKERS, [_worker_row(worker) for worker in answer["workers"]], right=NUMBERS)


def _queue_row(queue: dict[str, Any]) -> list[str | Text]:
    throughput = queue["throughput_last_minute"]
    limits = queue["limits"]
    # What stops work here: a pause, and work that waits with no live worker to serve it.
    flags = [("paused", "yellow")] if queue["paused"] else []
    flags += [("unconsumed", "bold red")] if queue["unconsumed"] else []
    flow = Text(",").join(Text(flag, style=style) for flag, style in flags) or Text("ok", "green")
    return [
        cell(queue["name"]),
        cell(queue["ready"]),
        cell(queue["delayed"]),
        cell(queue["processing"]),
        age(queue["oldest_ready_age_seconds"]),
        cell(throughput["succeeded"]),
        cell(throughput["failed"]),
        cell(limits["rate"]),
        cell(limits["concurrency"]),
        cell(queue["consumers"]),
        flow,
    ]


def _worker_row(worker: dict[str, Any]) -> list[str | Text]:
    return [
        cell(worker["id"]),
        cell(worker["host"]),
        cell(worker["pid"]),
        cell(worker["version"]),
        ",".join(worker["queues"]) or "-",
        cell(worker["concurrency"]),
        cell(worker["running_count"]),
        since(worker["started_at"]),
        since(worker["last_seen_at"]),
    ]
