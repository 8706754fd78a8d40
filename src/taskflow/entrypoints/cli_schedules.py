"""`taskflow schedules`: the periodic tasks, through the API (docs/api.md, "Command line")."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from taskflow.client import Client, Schedule
from taskflow.entrypoints.cli_tasks import as_json, print_table

T = TypeVar("T")
Ask = Callable[[argparse.Namespace, Callable[[Client], T]], T | None]

SHOWN = ("name", "type", "when", "timezone", "paused", "last_run_at", "next_run_at")


def add_schedules_command(
    commands: Any, *, ask: Ask[list[Schedule]], add_url: Callable[[argparse.ArgumentParser], None]
) -> None:
    parser = commands.add_parser(
        "schedules", help="list the periodic tasks, with their last and next tick"
    )
    parser.add_argument("--json", action="store_true", help="print the schedules as JSON")
    add_url(parser)

    def run(args: argparse.Namespace) -> int:
        found = ask(args, lambda client: client.schedules())
        if found is not None:
            print_schedules(found, as_json_text=args.json)
        return 1 if found is None else 0

    parser.set_defaults(run=run)


def print_schedules(schedules: Sequence[Schedule], *, as_json_text: bool) -> None:
    shown = as_json({"items": schedules})
    if as_json_text:
        print(json.dumps(shown, indent=2))
        return
    rows = []
    for item in shown["items"]:
        when = item["cron"] if item["cron"] is not None else f"every {item['every']:g}s"
        cells = {**item, "when": when, "paused": "yes" if item["paused"] else "no"}
        rows.append(["-" if cells[c] is None else str(cells[c]) for c in SHOWN])
    print_table(SHOWN, rows)
