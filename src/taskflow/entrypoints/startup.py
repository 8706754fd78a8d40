"""What every taskflow process does first: settings, logging, registry, container."""

from __future__ import annotations

import gc
import logging

from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.dialect import Write
from taskflow.config import ConfigError, Mode, Settings
from taskflow.containers import Container, build_container
from taskflow.domain.errors import InvalidSubmission, StoreUnavailable
from taskflow.domain.services.scheduling import check_timetables
from taskflow.entrypoints import logs
from taskflow.entrypoints.loading import load_registry

log = logging.getLogger("taskflow")

_GC_GEN0_THRESHOLD = 10_000  # allocations between young collections; CPython's default is 700


def prepare(mode: Mode, environ: dict[str, str] | None = None) -> Container:
    """Read settings, set up logging, load the task registry, build the container."""
    settings = Settings.from_env(environ, mode=mode)
    logs.configure(settings.log_level, settings.log_format)
    try:
        registry = load_registry(settings.tasks, debug_tasks=settings.debug_tasks)
    except (LookupError, TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    container = build_container(settings, registry)
    try:  # after the registry: its module may have set the application's tracer provider
        tracing = container.tracing()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    logs.trace_ids_from(None if tracing is None else tracing.trace_id)
    try:
        check_timetables(
            registry.schedules, registry, container.retry_policy(), container.clock().now()
        )
    except InvalidSubmission as exc:
        raise ConfigError(f"TASKFLOW_TASKS: {exc.message}") from None
    return container


def tune_gc_for_serving() -> None:
    """Collect garbage less often in an API or worker process, and never scan start-up's.

    A batch of 500 submissions, or a worker draining a queue, allocates tens of thousands of
    objects, nearly none in reference cycles; with the default thresholds the cyclic collector
    ran every few hundred of them and took about a sixth of the submit path's CPU.
    """
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


async def warm_store(container: Container, *writes: Write) -> None:
    """Open the store connections this process's hot path writes on, and prepare their
    statements, before its first task; an unreachable store is left to the first task."""
    repository = container.repository()
    if not isinstance(repository, SqlTaskRepository):
        return  # in memory, or wrapped for fault tests: nothing worth opening ahead
    try:
        await repository.warm(*writes)
    except StoreUnavailable as exc:
        log.warning("could not open the store's connections ahead", extra={"error": str(exc)})
