"""The `taskflow` command (docs/api.md, "Command line")."""

from __future__ import annotations

import argparse
import getpass
import importlib.metadata
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import httpx

from taskflow.client import ApiError, Client, Task
from taskflow.config import ConfigError, Settings
from taskflow.domain.errors import StoreUnavailable
from taskflow.domain.limits import (
    ACTOR_MAX_LENGTH,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MIN_PRIORITY,
)
from taskflow.entrypoints import cli_tasks
from taskflow.entrypoints.cli_schedules import add_schedules_command
from taskflow.entrypoints.errors import CannotStart

PROG = "taskflow"
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        return _fail(str(exc), code=2)
    except StoreUnavailable as exc:
        return _fail(f"the database is unreachable: {exc.message}")
    except CannotStart as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return code


def _fail(message: str, *, code: int = 1) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="taskflow: durable background tasks (see README.md).")
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {importlib.metadata.version('taskflow')}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    dev = commands.add_parser(
        "dev", help="API and worker in one process on ./taskflow.db; no servers needed"
    )
    _add_listen(dev)
    dev.set_defaults(run=_dev)

    api = commands.add_parser("api", help="serve the HTTP API")
    _add_listen(api)
    api.set_defaults(run=_api)

    worker = commands.add_parser("worker", help="run tasks")
    worker.add_argument(
        "--queues",
        type=_queue_list,
        default=["default"],
        help="comma-separated queues, served in this order (default: default)",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help="tasks at once (default: TASKFLOW_WORKER_CONCURRENCY, 16)",
    )
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)

    submit = commands.add_parser("submit", help="submit a task through the API")
    submit.add_argument("type", help="task type, e.g. debug.echo")
    submit.add_argument(
        "--payload", type=_json_object, default={}, help="JSON object (default: {})"
    )
    submit.add_argument(
        "--queue",
        default=None,
        help=f"queue to run it on (default: the type's, else {DEFAULT_QUEUE})",
    )
    submit.add_argument(
        "--priority",
        type=int,
        default=None,
        help=f"{MIN_PRIORITY}-{MAX_PRIORITY}, higher runs first "
        f"(default: the type's, else {DEFAULT_PRIORITY})",
    )
    submit.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help=f"retries after failed attempts, 0-{MAX_RETRIES_LIMIT} "
        f"(default: the type's, else {DEFAULT_MAX_RETRIES})",
    )
    submit.add_argument("--delay", type=float, default=None, help="seconds before it may run")
    submit.add_argument(
        "--wait", action="store_true", help="wait for a final state; exit 1 unless SUCCESS"
    )
    submit.add_argument(
        "--timeout", type=float, default=60.0, help="how long --wait waits (default 60)"
    )
    _add_url(submit)
    submit.set_defaults(run=_submit)

    status = commands.add_parser("status", help="show a task")
    status.add_argument("id", help="task id")
    _add_url(status)
    status.set_defaults(run=_on_task(lambda client, args: client.get(args.id)))

    retry = commands.add_parser("retry", help="run a FAILED or CANCELLED task again")
    retry.add_argument("id", help="task id")
    retry.add_argument(
        "--payload",
        type=_json_object,
        default=None,
        help="a JSON object to run it with instead of its payload (default: keep it)",
    )
    _add_url(retry)
    retry.set_defaults(run=_on_task(lambda client, args: client.retry(args.id, args.payload)))

    cancel = commands.add_parser("cancel", help="cancel a task through the API")
    cancel.add_argument("id", help="task id")
    _add_url(cancel)
    cancel.set_defaults(run=_on_task(lambda client, args: client.cancel(args.id)))

    _add_tasks_commands(commands)
    add_schedules_command(commands, ask=_ask, add_url=_add_url)
    return parser


def _add_tasks_commands(
    commands: argparse._SubParsersAction[_Parser],
) -> None:
    tasks = commands.add_parser("tasks", help="list and count tasks through the API")
    actions = tasks.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        parser_class=_Parser,
        help="list: a page of tasks; stats: counts per queue, type and status; "
        "retry: run FAILED or CANCELLED tasks again",
    )
    listing = actions.add_parser("list", help="list tasks newest first, a page at a time")
    cli_tasks.add_list_options(listing)
    _add_url(listing)
    listing.set_defaults(run=_tasks_list)
    stats = actions.add_parser("stats", help="count tasks per queue, type and status")
    stats.add_argument("--json", action="store_true", help="print the counts as JSON")
    _add_url(stats)
    stats.set_defaults(run=_tasks_stats)
    retrying = actions.add_parser(
        "retry", help="run again the FAILED or CANCELLED tasks the filters select"
    )
    cli_tasks.add_retry_options(retrying)
    _add_url(retrying)
    retrying.set_defaults(run=_tasks_retry)


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="default: TASKFLOW_HOST, 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: TASKFLOW_PORT, 8000")


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help="API base URL (default: TASKFLOW_API_URL, else http://TASKFLOW_HOST:TASKFLOW_PORT)",
    )


# -- argument types ---------------------------------------------------------------------------


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the payload must be a JSON object")
    return value


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _queue_list(raw: str) -> list[str]:
    queues = [q.strip() for q in raw.split(",") if q.strip()]
    if not queues:
        raise argparse.ArgumentTypeError("name at least one queue")
    return queues


# -- commands ---------------------------------------------------------------------------------


def _dev(args: argparse.Namespace) -> int:
    from taskflow.entrypoints import runtime, startup

    container = startup.prepare("dev")
    settings: Settings = container.settings()
    options = runtime.worker_options(settings, queues=_all_queues(container), concurrency=None)
    return runtime.run(
        runtime.serve_dev(
            container,
            host=args.host or settings.host,
            port=args.port or settings.port,
            options=options,
        )
    )


def _api(args: argparse.Namespace) -> int:
    from taskflow.entrypoints import runtime, startup

    container = startup.prepare("server")
    settings: Settings = container.settings()
    host, port = args.host or settings.host, args.port or settings.port
    if settings.api_processes > 1:
        return runtime.serve_api_processes(
            host=host, port=port, processes=settings.api_processes, metrics=settings.metrics
        )
    return runtime.run(runtime.serve_api(container, host=host, port=port))


def _worker(args: argparse.Namespace) -> int:
    from taskflow.entrypoints import runtime, startup

    container = startup.prepare("server")
    options = runtime.worker_options(
        container.settings(), queues=args.queues, concurrency=args.concurrency
    )
    return runtime.exit_now_if_handlers_linger(
        runtime.run(runtime.serve_worker(container, options))
    )


def _migrate(args: argparse.Namespace) -> int:
    from taskflow.entrypoints import runtime, startup

    container = startup.prepare("server")
    return runtime.run(runtime.run_migrations(container))


def _submit(args: argparse.Namespace) -> int:
    options = {
        key: value
        for key, value in {
            "queue": args.queue,
            "priority": args.priority,
            "max_retries": args.max_retries,
            "delay_seconds": args.delay,
        }.items()
        if value is not None
    }
    url = _api_url(args)
    try:
        with Client(url, actor=_actor()) as client:
            task = client.submit(args.type, args.payload, **options)
            if args.wait:
                task = client.wait(task.id, timeout=args.timeout)
    except (ApiError, TimeoutError) as exc:
        return _fail(str(exc))
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach the API at {url}: {exc}")
    _print(task)
    return 0 if not args.wait or task.status == "SUCCESS" else 1


def _on_task(
    act: Callable[[Client, argparse.Namespace], Task],
) -> Callable[[argparse.Namespace], int]:
    """A command that does ``act`` to the task ``args.id`` through the API and prints it."""

    def command(args: argparse.Namespace) -> int:
        task = _ask(args, lambda client: act(client, args))
        if task is not None:
            _print(task)
        return 1 if task is None else 0

    return command


def _tasks_list(args: argparse.Namespace) -> int:
    filters = cli_tasks.list_filters(args)
    page = _ask(args, lambda client: client.list(limit=args.limit, cursor=args.cursor, **filters))
    if page is not None:
        cli_tasks.print_page(page, as_json_text=args.json)
    return 1 if page is None else 0


def _tasks_stats(args: argparse.Namespace) -> int:
    counts = _ask(args, lambda client: client.stats())
    if counts is not None:
        cli_tasks.print_counts(counts, as_json_text=args.json)
    return 1 if counts is None else 0


def _tasks_retry(args: argparse.Namespace) -> int:
    selection = cli_tasks.retry_selection(args)
    retried = _ask(args, lambda client: client.retry_many(**selection))
    if retried is not None:
        cli_tasks.print_retried(retried, as_json_text=args.json)
    return 1 if retried is None else 0


def _ask(args: argparse.Namespace, call: Callable[[Client], T]) -> T | None:
    """What ``call`` gets from the API; None, once the failure is said, when it fails."""
    url = _api_url(args)
    try:
        with Client(url, actor=_actor()) as client:
            return call(client)
    except ApiError as exc:
        _fail(str(exc))
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the API at {url}: {exc}")
    return None


def _api_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    if os.environ.get("TASKFLOW_API_URL", "").strip():
        return os.environ["TASKFLOW_API_URL"].strip()
    settings = Settings.from_env()
    return f"http://{settings.host}:{settings.port}"


def _actor() -> str:
    """Who makes the changes, as the API records them: ``cli:USER@HOST``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        user = "unknown"
    named = f"cli:{user}@{socket.gethostname()}"
    return "".join(c if " " <= c <= "~" else "?" for c in named)[:ACTOR_MAX_LENGTH]


def _all_queues(container: Any) -> list[str]:
    # `taskflow dev` serves every queue its registry names, default first.
    named = {definition.queue for definition in container.registry() if definition.queue}
    return ["default", *sorted(named - {"default"})]


def _print(task: Task) -> None:
    print(json.dumps(cli_tasks.as_json(task), indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
