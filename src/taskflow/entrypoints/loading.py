"""Loading the user's task registry (``TASKFLOW_TASKS``), as uvicorn and Celery load an app."""

from __future__ import annotations

import importlib
import os
import sys

from taskflow.registry import Registry


def load_registry(spec: str | None, *, debug_tasks: bool) -> Registry:
    """The registry named by ``module:attribute`` (TASKFLOW_TASKS), plus the debug types."""
    registry = Registry()
    if debug_tasks:
        from taskflow.debug_tasks import tasks as debug

        registry.include(debug)
    if spec:
        registry.include(_import_registry(spec))
    return registry


def _import_registry(spec: str) -> Registry:
    module_name, _, attribute = spec.partition(":")
    _import_from_working_directory()
    try:
        # The one import by name: TASKFLOW_TASKS is the operator's setting, never a request's
        # or a stored row's; task types from those resolve through the Registry only.
        module = importlib.import_module(module_name)  # noqa: TID251
    except ImportError as exc:
        raise LookupError(f"TASKFLOW_TASKS: cannot import {module_name!r}: {exc}") from None
    found = getattr(module, attribute, None)
    if not isinstance(found, Registry):
        raise LookupError(f"TASKFLOW_TASKS: {spec!r} is not a taskflow Registry")
    return found


def _import_from_working_directory() -> None:
    # An installed script's sys.path starts at its own folder, not the user's: without this,
    # `TASKFLOW_TASKS=myapp.tasks:tasks taskflow dev` run beside myapp/ cannot import it.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
