"""Bodies and helpers of the retry routes: one task (``POST /api/tasks/{id}/retry``, optionally
with a new payload) and many (``POST /api/tasks/retry``), and who asked for each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Request

from taskflow.domain.errors import InvalidSubmission
from taskflow.domain.limits import ACTOR_MAX_LENGTH, RETRY_MANY_LIMIT_MAX, actor_problem
from taskflow.domain.model import Task, TaskStatus
from taskflow.domain.queries import MetadataEquals, TaskQuery
from taskflow.entrypoints.http.schemas import QueueName, TypeName

#: The header naming who makes a change, recorded in the task's history.
ACTOR_HEADER = "Taskflow-Actor"


class RetryIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/tasks/{id}/retry``: the body is optional; a ``payload`` replaces the task's."""

    payload: dict[str, Any] | None = None


class RetryManyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /api/tasks/retry``: which tasks, as ``GET /api/tasks`` filters them, and how many
    at most. No status: FAILED and CANCELLED."""

    status: list[Literal["FAILED", "CANCELLED"]] | None = None
    type: TypeName | None = None
    queue: QueueName | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: dict[str, str] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=RETRY_MANY_LIMIT_MAX)] | None = None

    def query(self, *, tenant: str) -> TaskQuery:
        """The tasks this body picks among ``tenant``'s."""
        return TaskQuery(
            tenant=tenant,
            statuses=frozenset(TaskStatus(s) for s in self.status or ()),
            type=self.type,
            queue=self.queue,
            created_after=self.created_after,
            created_before=self.created_before,
            metadata=tuple(MetadataEquals(k, v) for k, v in (self.metadata or {}).items()),
        )


class RetriedOut(msgspec.Struct):
    retried: int  # how many tasks this request made PENDING again
    ids: list[UUID]

    @classmethod
    def of(cls, tasks: list[Task]) -> RetriedOut:
        return cls(len(tasks), [t.id for t in tasks])


def actor(request: Request[Any, Any, Any]) -> str:
    """Who asks: the ``Taskflow-Actor`` header, else the client's address."""
    named = request.headers.get(ACTOR_HEADER)
    if named is None:
        host = request.client.host if request.client else "unknown"
        return f"http:{host}"[:ACTOR_MAX_LENGTH]
    problem = actor_problem(named)
    if problem:
        raise InvalidSubmission(f"{ACTOR_HEADER}: {problem}", field=ACTOR_HEADER)
    return named
