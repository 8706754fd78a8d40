"""``GET /api/tasks`` and ``GET /api/tasks/stats``: query parameters in, pages and counts out.

The query string is read by hand rather than declared: ``status`` repeats, and
``metadata.KEY`` names are the user's own. Every fault is an ``InvalidQuery`` naming the
parameter, answered 400 like any other fault in a request.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
from litestar.datastructures import MultiDict

from taskflow.domain.errors import InvalidQuery
from taskflow.domain.model import TaskStatus
from taskflow.domain.queries import MetadataEquals, Page, Position, TaskCount, TaskQuery
from taskflow.entrypoints.http.schemas import TaskOut

METADATA_PREFIX = "metadata."
_KNOWN = frozenset(
    {"status", "type", "queue", "created_after", "created_before", "limit", "cursor"}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A '+' of an offset that reached us unescaped reads as a space: "…T10:00:00 02:00".
_SPACED_OFFSET = re.compile(r" (\d\d:\d\d)$")


class TaskPageOut(msgspec.Struct):
    items: list[TaskOut]
    next_cursor: str | None  # give it as ``cursor`` to get the next page; null: no more

    @classmethod
    def from_page(cls, page: Page) -> TaskPageOut:
        cursor = None if page.next is None else encode_cursor(page.next)
        return cls([TaskOut.from_task(t) for t in page.items], cursor)


class TaskCountOut(msgspec.Struct):
    queue: str
    type: str
    status: str
    count: int


class TaskCountsOut(msgspec.Struct):
    items: list[TaskCountOut]

    @classmethod
    def from_counts(cls, counts: Iterable[TaskCount]) -> TaskCountsOut:
        return cls([TaskCountOut(c.queue, c.type, c.status.value, c.count) for c in counts])


@dataclass(frozen=True, slots=True)
class ListRequest:
    query: TaskQuery
    after: Position | None
    limit: int | None


def parse_list_request(params: MultiDict[str], *, tenant: str) -> ListRequest:
    """The listing a query string asks for, among ``tenant``'s tasks."""
    unknown = sorted(
        name for name in params if name not in _KNOWN and not name.startswith(METADATA_PREFIX)
    )
    if unknown:
        raise InvalidQuery(f"{unknown[0]} is not a known parameter", field=unknown[0])
    query = TaskQuery(
        tenant=tenant,
        statuses=frozenset(_status(s) for s in params.getall("status", [])),
        type=_single(params, "type"),
        queue=_single(params, "queue"),
        created_after=_moment(params, "created_after"),
        created_before=_moment(params, "created_before"),
        metadata=tuple(
            MetadataEquals(name.removeprefix(METADATA_PREFIX), value)
            for name, value in params.multi_items()
            if name.startswith(METADATA_PREFIX)
        ),
    )
    cursor = _single(params, "cursor")
    return ListRequest(query, None if cursor is None else decode_cursor(cursor), _limit(params))


def encode_cursor(position: Position) -> str:
    """base64url of the microseconds since 1970 (8 bytes) and the id (16 bytes) of the key."""
    micros = (position.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = micros.to_bytes(8, "big", signed=True) + position.id.bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 24:
        raise InvalidQuery("cursor is not one this API gave out", field="cursor")
    micros = int.from_bytes(raw[:8], "big", signed=True)
    try:
        created_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidQuery("cursor is not one this API gave out", field="cursor") from None
    return Position(created_at, UUID(bytes=raw[8:]))


def _single(params: MultiDict[str], name: str) -> str | None:
    values = params.getall(name, [])
    if len(values) > 1:
        raise InvalidQuery(f"{name} may be given once", field=name)
    return values[0] if values else None


def _status(raw: str) -> TaskStatus:
    try:
        return TaskStatus(raw)
    except ValueError:
        known = ", ".join(s.value for s in TaskStatus)
        problem = f"status must be one of {known}, got {raw[:64]!r}"
        raise InvalidQuery(problem, field="status") from None


def _moment(params: MultiDict[str], name: str) -> datetime | None:
    raw = _single(params, name)
    if raw is None:
        return None
    try:
        moment = msgspec.convert(_SPACED_OFFSET.sub(r"+\1", raw), datetime)
    except msgspec.ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidQuery(
            f"{name} must be an RFC 3339 timestamp with a time zone, got {raw[:64]!r}", field=name
        )
    return moment


def _limit(params: MultiDict[str]) -> int | None:
    raw = _single(params, "limit")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidQuery(f"limit must be an integer, got {raw[:64]!r}", field="limit") from None
