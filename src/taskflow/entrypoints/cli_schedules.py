"""`taskflow schedules`: the periodic tasks, through the API (docs/api.md, "Command line")."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from taskflow.client import Schedule
from taskflow.entrypoints.cli_api import Exit, add_url, ask
from taskflow.entrypoints.cli_args import add_json
from taskflow.entrypoints.cli_output import as_json, cell, print_json, print_table

SHOWN = ("name", "type", "when", "timezone", "paused", "last_run_at", "next_run_at")


def add_schedules_command(commands: Any) -> None:
    parser = commands.add_parser(
        "schedules", help="list the periodic tasks, with their last and next tick"
    )
    add_json(parser, "the schedules")
    add_url(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    print_schedules(ask(args, lambda client: client.schedules()), as_json_text=args.json)
    return Exit.OK


def print_schedules(schedules: Sequence[Schedule], *, as_json_text: bool) -> None:
    if as_json_text:
        print_json({"items": schedules})
        return
    rows = []
    for item in as_json({"items": schedules})["items"]:
        when = item["cron"] if item["cron"] is not None else f"every {item['every']:g}s"
        cells = {**item, "when": when}
        rows.append([cell(cells[c]) for c in SHOWN])
    print_table(SHOWN, rows)
