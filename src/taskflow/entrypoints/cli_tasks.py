"""`taskflow tasks list|stats|retry`: the commands over many tasks, their options and tables.

``tasks show|cancel`` and ``tasks retry ID``, about one task, are in cli_task.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from taskflow.client import RetriedTasks, RetrySelection, TaskCount, TaskFilters, TaskPage
from taskflow.domain.limits import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from taskflow.domain.model import RETRYABLE, TaskStatus
from taskflow.entrypoints import cli_task
from taskflow.entrypoints.cli_api import CommandFailed, Exit, add_url, ask
from taskflow.entrypoints.cli_args import Parser, add_json, json_object, task_id
from taskflow.entrypoints.cli_output import as_json, print_json, print_table, status_text

LISTED = ("id", "type", "queue", "status", "attempts", "created_at")
COUNTED = ("queue", "type", "status", "count")
FILTERS = ("status", "type", "queue", "created_after", "created_before", "metadata", "limit")


def add_tasks_commands(commands: Any) -> None:
    tasks = commands.add_parser("tasks", help="list, show, cancel, retry and count tasks")
    actions = tasks.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        parser_class=Parser,
        help="list: a page of tasks; show: one task and its attempts; cancel: stop one; "
        "retry: run FAILED or CANCELLED tasks again; stats: counts per queue, type and status",
    )
    listing = actions.add_parser("list", help="list tasks newest first, a page at a time")
    _add_list_options(listing)
    add_url(listing)
    listing.set_defaults(run=_list)
    cli_task.add_show_and_cancel(actions)
    retrying = actions.add_parser(
        "retry",
        help="run again one task (ID), or the FAILED or CANCELLED tasks the filters select",
    )
    _add_retry_options(retrying)
    add_url(retrying)
    retrying.set_defaults(run=_retry)
    stats = actions.add_parser("stats", help="count tasks per queue, type and status")
    add_json(stats, "the counts")
    add_url(stats)
    stats.set_defaults(run=_stats)


def _add_list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        choices=[s.value for s in TaskStatus],
        help="only tasks in this status; repeat for several",
    )
    _add_common_filters(parser)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"tasks on the page, 1-{LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT})",
    )
    parser.add_argument("--cursor", default=None, help="the next cursor a previous page printed")
    add_json(parser, "the page")


def _add_retry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id",
        nargs="?",
        type=task_id,
        default=None,
        help="the task to retry; leave it out to retry the tasks the filters select",
    )
    parser.add_argument(
        "--payload",
        type=json_object,
        default=None,
        help="with ID: a JSON object to run it with instead of its payload (default: keep it)",
    )
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        choices=sorted(s.value for s in RETRYABLE),
        help="only tasks in this status; repeat for both",
    )
    _add_common_filters(parser)
    parser.add_argument(
        "--limit", type=int, default=None, help="retry at most this many (default: the API's)"
    )
    add_json(parser, "the API's answer (the task with ID, else the count and the ids)")


def _add_common_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", default=None, help="only tasks of this type")
    parser.add_argument("--queue", default=None, help="only tasks on this queue")
    for edge in ("after", "before"):
        parser.add_argument(
            f"--created-{edge}",
            default=None,
            metavar="TIMESTAMP",
            help=f"only tasks created {edge} this RFC 3339 instant (with a time zone)",
        )
    parser.add_argument(
        "--metadata",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="only tasks whose metadata KEY equals VALUE (see docs/api.md); repeatable",
    )


def list_filters(args: argparse.Namespace) -> TaskFilters:
    """The filters of ``tasks list`` as those of ``Client.list`` (limit and cursor apart)."""
    return TaskFilters(
        status=args.status,
        type=args.type,
        queue=args.queue,
        created_after=args.created_after,
        created_before=args.created_before,
        metadata=dict(args.metadata),
    )


def retry_selection(args: argparse.Namespace) -> RetrySelection:
    """The options of ``tasks retry`` as the selection of ``Client.retry_many``."""
    return RetrySelection(**list_filters(args), limit=args.limit)


def _list(args: argparse.Namespace) -> int:
    filters = list_filters(args)
    page = ask(args, lambda client: client.list(limit=args.limit, cursor=args.cursor, **filters))
    print_page(page, as_json_text=args.json)
    return Exit.OK


def _stats(args: argparse.Namespace) -> int:
    counts = ask(args, lambda client: client.stats())
    print_counts(counts, as_json_text=args.json)
    return Exit.OK


def _retry(args: argparse.Namespace) -> int:
    if args.id is not None:
        given = [f"--{name.replace('_', '-')}" for name in FILTERS if getattr(args, name)]
        if given:
            raise CommandFailed(
                f"tasks retry: give a task id or filters, not both ({', '.join(given)})",
                Exit.USAGE,
            )
        return cli_task.retry_one(args)
    if args.payload is not None:
        raise CommandFailed("tasks retry: --payload needs the id of the task", Exit.USAGE)
    selection = retry_selection(args)
    retried = ask(args, lambda client: client.retry_many(**selection))
    print_retried(retried, as_json_text=args.json)
    return Exit.OK


def print_page(page: TaskPage, *, as_json_text: bool) -> None:
    if as_json_text:
        print_json(page)
        return
    shown = as_json(page)
    print_table(LISTED, [_row(task, LISTED) for task in shown["items"]], right={"attempts"})
    if page.next_cursor:
        print(f"next cursor: {page.next_cursor}")


def print_counts(counts: Sequence[TaskCount], *, as_json_text: bool) -> None:
    if as_json_text:
        print_json({"items": counts})
        return
    shown = as_json({"items": counts})
    print_table(COUNTED, [_row(item, COUNTED) for item in shown["items"]], right={"count"})


def print_retried(retried: RetriedTasks, *, as_json_text: bool) -> None:
    if as_json_text:
        print_json(retried)
        return
    print(f"retried {retried.retried} task{'' if retried.retried == 1 else 's'}")
    if retried.ids:
        print_table(("id",), [[str(task_id)] for task_id in retried.ids])


def _row(item: dict[str, Any], columns: Sequence[str]) -> list[Any]:
    return [status_text(item[c]) if c == "status" else str(item[c]) for c in columns]


def _key_value(raw: str) -> tuple[str, str]:
    key, equals, value = raw.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value
