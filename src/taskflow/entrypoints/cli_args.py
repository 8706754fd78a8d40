"""The `taskflow` parser's own kind, and the types of its arguments: each refuses a bad value
with one line and exit status 2, before anything is sent."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any, NoReturn

from taskflow.domain.limits import queue_name_problem


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the payload must be a JSON object")
    return value


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {raw!r}")
    return value


def queue_list(raw: str) -> list[str]:
    queues = [q.strip() for q in raw.split(",") if q.strip()]
    if not queues:
        raise argparse.ArgumentTypeError("name at least one queue")
    return queues


def queue_name(raw: str) -> str:
    problem = queue_name_problem(raw)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem}, got {raw!r}")
    return raw


def task_id(raw: str) -> str:
    """A task id as the API writes it; anything that is not a UUID is a usage mistake."""
    try:
        return str(uuid.UUID(raw.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a task id is a UUID, got {raw!r}") from None


def add_json(parser: argparse.ArgumentParser, what: str, *, nested: bool = False) -> None:
    """``--json``; ``nested`` as for ``cli_api.add_url``."""
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if nested else False,
        help=f"print {what} as JSON, as the API answered",
    )
