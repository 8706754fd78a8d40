"""Tenants: whose tasks a caller may see and touch (docs/security.md, "Tenants"; decision 36).

A key belongs to one tenant, and so does every task it submits. Another tenant's task is
answered exactly as an id nobody ever used: the same error, the same words, so a caller cannot
learn that it exists. An Idempotency-Key is the tenant's own: the store keeps it prefixed
with the tenant's name, which no key a client sends can spell.
"""

from __future__ import annotations

from uuid import UUID

from taskflow.domain.errors import TaskNotFound
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.model import Task

#: Between a named tenant and its Idempotency-Key in the store: a key a client sends is
#: printable ASCII, so it never holds this character, and two tenants' keys never meet.
_KEY_SEPARATOR = "\x1f"


def not_found(task_id: UUID) -> TaskNotFound:
    """What an unknown id and another tenant's id both answer."""
    return TaskNotFound(f"no task has id {task_id}")


def owned(task: Task, tenant: str) -> Task:
    """``task`` when it is ``tenant``'s; else TaskNotFound, as if it did not exist."""
    if task.tenant != tenant:
        raise not_found(task.id)
    return task


def scoped_key(tenant: str, key: str) -> str:
    """The Idempotency-Key ``key`` of ``tenant`` as the store keeps it; the default tenant's
    keys are kept as sent, as they were before tenants."""
    return key if tenant == DEFAULT_TENANT else f"{tenant}{_KEY_SEPARATOR}{key}"
