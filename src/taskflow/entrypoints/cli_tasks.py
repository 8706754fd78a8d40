"""`taskflow tasks list|stats|retry`: their options and how they print.

The commands themselves (calling the API) are in cli.py, with the others.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from taskflow.client import RetriedTasks, RetrySelection, TaskCount, TaskFilters, TaskPage
from taskflow.domain.limits import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from taskflow.domain.model import RETRYABLE, TaskStatus

LISTED = ("id", "type", "queue", "status", "attempts", "created_at")
COUNTED = ("queue", "type", "status", "count")


def add_list_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--json", action="store_true", help="print the page as JSON")


def add_retry_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--json", action="store_true", help="print the API's answer (count and ids) as JSON"
    )


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


def as_json(value: Any) -> Any:
    """A client's answer as JSON values, written as the API wrote them (timestamps included)."""
    return _timestamps_as_text(msgspec.to_builtins(value, builtin_types=(datetime,)))


def print_page(page: TaskPage, *, as_json_text: bool) -> None:
    shown = as_json(page)
    if as_json_text:
        print(json.dumps(shown, indent=2))
        return
    print_table(LISTED, [[str(task[c]) for c in LISTED] for task in shown["items"]])
    if page.next_cursor:
        print(f"next cursor: {page.next_cursor}")


def print_counts(counts: Sequence[TaskCount], *, as_json_text: bool) -> None:
    shown = as_json({"items": counts})
    if as_json_text:
        print(json.dumps(shown, indent=2))
        return
    print_table(COUNTED, [[str(item[c]) for c in COUNTED] for item in shown["items"]])


def print_retried(retried: RetriedTasks, *, as_json_text: bool) -> None:
    if as_json_text:
        print(json.dumps(as_json(retried), indent=2))
        return
    print(f"retried {retried.retried} task{'' if retried.retried == 1 else 's'}")


def _timestamps_as_text(value: Any) -> Any:
    # The API's own form (six fractional digits, Z), which msgspec would shorten at times.
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {key: _timestamps_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_timestamps_as_text(item) for item in value]
    return value


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    for row in [[c.upper() for c in columns], *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _key_value(raw: str) -> tuple[str, str]:
    key, equals, value = raw.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value
