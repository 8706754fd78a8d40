"""`taskflow tasks list` and `taskflow tasks stats`: their options and how they print.

The commands themselves (calling the API) are in cli.py, with the others.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from taskflow.domain.limits import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from taskflow.domain.model import TaskStatus

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
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"tasks on the page, 1-{LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT})",
    )
    parser.add_argument("--cursor", default=None, help="the next cursor a previous page printed")
    parser.add_argument("--json", action="store_true", help="print the page as JSON")


def list_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``tasks list`` as the arguments of ``Client.list``."""
    return {
        "status": args.status,
        "type": args.type,
        "queue": args.queue,
        "created_after": args.created_after,
        "created_before": args.created_before,
        "metadata": dict(args.metadata),
        "limit": args.limit,
        "cursor": args.cursor,
    }


def print_page(page: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(page, indent=2))
        return
    _table(LISTED, [[str(task[c]) for c in LISTED] for task in page["items"]])
    if page["next_cursor"]:
        print(f"next cursor: {page['next_cursor']}")


def print_counts(counts: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(counts, indent=2))
        return
    _table(COUNTED, [[str(item[c]) for c in COUNTED] for item in counts["items"]])


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    for row in [[c.upper() for c in columns], *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _key_value(raw: str) -> tuple[str, str]:
    key, equals, value = raw.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value
