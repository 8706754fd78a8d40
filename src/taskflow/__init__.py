"""taskflow: durable background tasks for Python.

Write handlers with :class:`Registry`; submit with :class:`Client`, over HTTP, or inside your
own PostgreSQL transaction with :func:`enqueue`.
"""

from typing import Any

from taskflow.client import ApiError, Client
from taskflow.handlers import Fail, Retry, TaskContext
from taskflow.registry import Registry

__all__ = ["ApiError", "Client", "Fail", "Registry", "Retry", "TaskContext", "enqueue"]


def __getattr__(name: str) -> Any:
    # `enqueue` brings the SQL adapter (SQLAlchemy, asyncpg) in: only when it is asked for,
    # so that a producer using the HTTP client alone imports none of it.
    if name == "enqueue":
        from taskflow.transactional import enqueue

        return enqueue
    raise AttributeError(f"module 'taskflow' has no attribute {name!r}")
