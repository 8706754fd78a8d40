"""A ``TaskQuery`` as SQL: the listing's WHERE, its keyset and the counts of ``stats``.

The metadata filter is the one part each database says its own way (``Dialect.metadata_equals``);
the rest is the same statement on both. Each filter has an index that leads with its column and
ends with ``(created_at, id)``, the listing's order (schema.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, Uuid, func, literal, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.sql.dialect import Dialect
from taskflow.adapters.sql.rows import stored_tenant
from taskflow.adapters.sql.schema import UtcDateTime, status_in, tasks
from taskflow.domain.model import FINAL, UNFINISHED
from taskflow.domain.queries import Position, TaskQuery


def finding(
    query: TaskQuery, dialect: Dialect, *, after: Position | None, limit: int
) -> Select[Any]:
    stmt = select(tasks).where(*_conditions(query, dialect))
    if after is not None:
        key = tuple_(literal(after.created_at, UtcDateTime()), literal(after.id, Uuid()))
        stmt = stmt.where(tuple_(tasks.c.created_at, tasks.c.id) < key)
    return stmt.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)


def counting(tenant: str | None) -> Select[Any]:
    """Tasks per queue, type and status: ``tenant``'s, or every tenant's (None)."""
    columns = (tasks.c.queue, tasks.c.type, tasks.c.status)
    stmt = select(*columns, func.count())
    if tenant is not None:
        stmt = stmt.where(tenant_is(tenant))
    return stmt.group_by(*columns)


def finishing(since: datetime, dialect: Dialect, tenant: str | None) -> Select[Any]:
    """Final tasks finished since ``since``, counted per minute and status; the partial index
    on ``finished_at`` of final tasks (the retention job's) finds them."""
    minute = dialect.minutes_since(tasks.c.finished_at, since)
    found = status_in(FINAL) & (tasks.c.finished_at >= literal(since, UtcDateTime()))
    if tenant is not None:
        found = found & tenant_is(tenant)
    counted = select(minute, tasks.c.status, func.count()).where(found)
    return counted.group_by(minute, tasks.c.status)


def unfinished(tenant: str) -> Select[Any]:
    """How many of ``tenant``'s tasks are not final: a named tenant's through its partial
    index, the default tenant's through the status index."""
    return select(func.count()).where(tenant_is(tenant), status_in(UNFINISHED))


def tenant_is(tenant: str) -> ColumnElement[bool]:
    """The tasks of ``tenant``; the default tenant's are stored with NULL (decision 36)."""
    stored = stored_tenant(tenant)
    return tasks.c.tenant.is_(None) if stored is None else tasks.c.tenant == stored


def _conditions(query: TaskQuery, dialect: Dialect) -> list[ColumnElement[bool]]:
    found = [] if query.tenant is None else [tenant_is(query.tenant)]
    if query.statuses:
        found.append(status_in(query.statuses))
    if query.type is not None:
        found.append(tasks.c.type == query.type)
    if query.queue is not None:
        found.append(tasks.c.queue == query.queue)
    if query.created_after is not None:
        found.append(tasks.c.created_at > literal(query.created_after, UtcDateTime()))
    if query.created_before is not None:
        found.append(tasks.c.created_at < literal(query.created_before, UtcDateTime()))
    found.extend(dialect.metadata_equals(m) for m in query.metadata)
    return found
