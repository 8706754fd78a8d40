"""Looking tasks up by what they are (docs/api.md, "GET /api/tasks").

A ``TaskQuery`` says which tasks; a listing returns them newest first, ``created_at`` then
``id`` descending, a page at a time. A page ends at a ``Position`` (the last task's
``(created_at, id)``), and the next page starts strictly after it: a keyset, not an offset, so
tasks submitted while a client pages land before its first page and never shift the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from taskflow.domain.errors import InvalidQuery
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.limits import (
    LIST_LIMIT_DEFAULT,
    list_limit_problem,
    queue_name_problem,
    type_name_problem,
)
from taskflow.domain.model import Task, TaskStatus

#: A JSON number a metadata filter compares as a number only within 64 bits, which every store
#: can bind as a parameter; a longer one is compared as a string only.
_INT64 = 2**63


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a page ended: its last task's sort key. The next page holds older tasks only."""

    created_at: datetime
    id: UUID

    @classmethod
    def of(cls, task: Task) -> Position:
        return cls(task.created_at, task.id)


@dataclass(frozen=True, slots=True)
class MetadataEquals:
    """``metadata.KEY=VALUE``: the top-level ``key`` of a task's metadata holds ``value``.

    ``value`` is text, as a query string gives it. It matches the JSON string ``value``, and
    also the JSON scalar that ``value`` spells: ``42`` matches ``"42"`` and ``42`` (and
    ``42.0``), ``true`` matches ``"true"`` and ``true``, ``null`` matches ``"null"`` and
    ``null``. Objects and arrays are never matched.
    """

    key: str
    value: str

    def __post_init__(self) -> None:
        if not self.key:
            problem = "a metadata filter needs a key: metadata.KEY=VALUE"
            raise InvalidQuery(problem, field="metadata")
        if "\x00" in self.key or "\x00" in self.value:
            # No stored metadata holds U+0000 (a submission holding it is refused).
            field = f"metadata.{self.key.replace(chr(0), '')}"
            raise InvalidQuery(f"{field} must not hold the character U+0000", field=field)

    def values(self) -> tuple[Any, ...]:
        """The JSON values that match: the string, then the scalar it spells, if any."""
        scalar = _scalar(self.value)
        return (self.value,) if scalar is _NONE else (self.value, scalar)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        if self.key not in metadata:
            return False
        found = metadata[self.key]
        return any(_same_json(found, want) for want in self.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQuery:
    """Which tasks: each filter given narrows the choice; none given means every task.

    ``statuses``: any of them (empty: any status). ``created_after`` and ``created_before``
    are exclusive bounds and must carry a time zone. ``tenant``: whose tasks; None only for
    the operator's own jobs that span every tenant, never for a request (decision 36).
    """

    statuses: frozenset[TaskStatus] = frozenset()
    type: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: tuple[MetadataEquals, ...] = ()
    tenant: str | None = DEFAULT_TENANT

    def __post_init__(self) -> None:
        problem = None if self.type is None else type_name_problem(self.type)
        if problem:
            raise InvalidQuery(problem, field="type")
        problem = None if self.queue is None else queue_name_problem(self.queue)
        if problem:
            raise InvalidQuery(problem, field="queue")
        for name in ("created_after", "created_before"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidQuery(f"{name} must carry a time zone", field=name)

    def matches(self, task: Task) -> bool:
        """The filter itself, task by task (the in-memory store's; SQL says it in a WHERE)."""
        return (
            (self.tenant is None or task.tenant == self.tenant)
            and (not self.statuses or task.status in self.statuses)
            and (self.type is None or task.type == self.type)
            and (self.queue is None or task.queue == self.queue)
            and (self.created_after is None or task.created_at > self.created_after)
            and (self.created_before is None or task.created_at < self.created_before)
            and all(m.matches(task.metadata) for m in self.metadata)
        )


@dataclass(frozen=True, slots=True)
class Page:
    """Up to ``limit`` tasks newest first, and where the next page starts (None: no more)."""

    items: list[Task]
    next: Position | None

    @classmethod
    def of(cls, rows: Sequence[Task], limit: int) -> Page:
        """The page of ``rows``, read with one row more than ``limit`` to learn if more exist."""
        items = list(rows[:limit])
        more = len(rows) > limit and bool(items)
        return cls(items, Position.of(items[-1]) if more else None)


@dataclass(frozen=True, slots=True, order=True)
class TaskCount:
    """How many tasks of one type are in one status on one queue."""

    queue: str
    type: str
    status: TaskStatus
    count: int


def checked_limit(
    limit: int | None,
    *,
    default: int = LIST_LIMIT_DEFAULT,
    problem_of: Callable[[int], str | None] = list_limit_problem,
) -> int:
    """The number of tasks asked for (a page's by default), or ``default``; InvalidQuery (field
    ``limit``) when ``problem_of`` finds it out of range."""
    if limit is None:
        return default
    problem = problem_of(limit)
    if problem:
        raise InvalidQuery(problem, field="limit")
    return limit


_NONE = object()


def _scalar(text: str) -> Any:
    """The JSON number, boolean or null ``text`` spells, or ``_NONE``."""
    try:
        value = json.loads(text, parse_constant=lambda _: _NONE)
    except ValueError:
        return _NONE
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return _NONE


def _same_json(found: Any, want: Any) -> bool:
    """JSON equality of scalars: a boolean is not the number 1, a number is not its text."""
    if want is None or isinstance(want, bool | str):
        return type(found) is type(want) and found == want
    return isinstance(found, int | float) and not isinstance(found, bool) and found == want
