"""How the `taskflow` commands talk to the API, and how they end (docs/api.md, "Exit status")."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TypeVar

import httpx
import msgspec

from taskflow.client import ApiError, Client
from taskflow.config import ConfigError, Settings
from taskflow.domain.limits import ACTOR_MAX_LENGTH

T = TypeVar("T")


class Exit(IntEnum):
    """The exit status of ``taskflow``: one number per way a command can end."""

    OK = 0
    #: The API could not be reached or answered an error (an unknown id is its 404).
    ERROR = 1
    #: A usage mistake: an unknown command, a bad option or id, a bad setting.
    USAGE = 2
    #: ``submit --wait``: the task ended FAILED.
    TASK_FAILED = 3
    #: ``submit --wait``: the task ended CANCELLED.
    TASK_CANCELLED = 4
    #: ``submit --wait``: the task was not final when ``--timeout`` ran out.
    STILL_RUNNING = 5
    INTERRUPTED = 130


class CommandFailed(Exception):
    """A command that cannot go on: its one line for standard error, and its exit status."""

    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.code = code


def add_url(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """``--url``; ``nested``: on an action under a command that has one already (``queues
    pause``), so that ``queues --url U pause NAME`` keeps U."""
    parser.add_argument(
        "--url",
        type=_url,
        default=argparse.SUPPRESS if nested else None,
        help="API base URL (default: TASKFLOW_API_URL, else http://TASKFLOW_HOST:TASKFLOW_PORT)",
    )


def ask(args: argparse.Namespace, call: Callable[[Client], T]) -> T:
    """What ``call`` gets from the API at ``args.url``; ``CommandFailed`` when it fails."""
    with connected(args) as client:
        return call(client)


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Client]:
    """A client of the API at ``args.url``; its failures become ``CommandFailed``."""
    url = api_url(args)
    try:
        with Client(url, actor=actor()) as client:
            yield client
    except ApiError as exc:
        raise CommandFailed(str(exc)) from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise CommandFailed(f"cannot reach the API at {url}: {reason}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CommandFailed(f"the answer from {url} is not taskflow's: {exc}") from None


def api_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    from_env = os.environ.get("TASKFLOW_API_URL", "").strip()
    if from_env:
        try:
            return _url(from_env)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"TASKFLOW_API_URL {exc}") from None
    settings = Settings.from_env()
    return f"http://{settings.host}:{settings.port}"


def actor() -> str:
    """Who makes the changes, as the API records them: ``cli:USER@HOST``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        user = "unknown"
    named = f"cli:{user}@{socket.gethostname()}"
    return "".join(c if " " <= c <= "~" else "?" for c in named)[:ACTOR_MAX_LENGTH]


def _url(raw: str) -> str:
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"must be an http:// or https:// URL with a host, got {raw!r}"
        )
    return str(raw.strip())
