"""`taskflow dev|api|worker|migrate`: the commands that run taskflow's own processes."""

from __future__ import annotations

import argparse
from typing import Any

from taskflow.config import Settings
from taskflow.entrypoints.cli_args import positive_int, queue_list


def add_server_commands(commands: Any) -> None:
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
        type=queue_list,
        default=["default"],
        help="comma-separated queues, served in this order (default: default)",
    )
    worker.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="tasks at once (default: TASKFLOW_WORKER_CONCURRENCY, 16)",
    )
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="default: TASKFLOW_HOST, 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: TASKFLOW_PORT, 8000")


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
            container,
            host=host,
            port=port,
            processes=settings.api_processes,
            metrics=settings.metrics,
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


def _all_queues(container: Any) -> list[str]:
    # `taskflow dev` serves every queue its registry names, default first.
    named = {definition.queue for definition in container.registry() if definition.queue}
    return ["default", *sorted(named - {"default"})]
