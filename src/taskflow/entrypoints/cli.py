"""The `taskflow` command (docs/api.md, "Command line"): its parser and how it ends.

The commands live in modules by area: ``cli_servers`` (dev, api, worker, migrate),
``cli_submit`` (submit, and ``--wait``), ``cli_task`` (one task: show, cancel, retry ID, and
the older status, cancel, retry), ``cli_tasks`` (tasks list, stats and retry), ``cli_schedules``,
``cli_fleet`` (queues, workers), ``cli_keys`` (keys, on the database itself). ``cli_api``
talks to the API, ``cli_output`` prints, and ``cli_args`` reads arguments.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from taskflow.config import ConfigError
from taskflow.domain.errors import StoreNotMigrated, StoreUnavailable
from taskflow.entrypoints.cli_api import CommandFailed, Exit
from taskflow.entrypoints.cli_args import Parser
from taskflow.entrypoints.cli_fleet import add_fleet_commands
from taskflow.entrypoints.cli_keys import add_keys_commands
from taskflow.entrypoints.cli_schedules import add_schedules_command
from taskflow.entrypoints.cli_servers import add_server_commands
from taskflow.entrypoints.cli_submit import add_submit_command
from taskflow.entrypoints.cli_task import add_aliases
from taskflow.entrypoints.cli_tasks import add_tasks_commands
from taskflow.entrypoints.errors import CannotStart

PROG = "taskflow"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except CommandFailed as exc:
        return _fail(str(exc), code=exc.code)
    except ConfigError as exc:
        return _fail(str(exc), code=Exit.USAGE)
    except StoreUnavailable as exc:
        return _fail(f"the database is unreachable: {exc.message}")
    except StoreNotMigrated as exc:
        return _fail(exc.message)
    except CannotStart as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return code


def _fail(message: str, *, code: int = Exit.ERROR) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return int(code)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="taskflow: durable background tasks (see README.md).")
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {importlib.metadata.version('taskflow')}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    add_server_commands(commands)
    add_submit_command(commands)
    add_aliases(commands)
    add_tasks_commands(commands)
    add_schedules_command(commands)
    add_fleet_commands(commands)
    add_keys_commands(commands)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
