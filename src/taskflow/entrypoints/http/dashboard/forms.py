"""The dashboard's forms read into what the services take.

The task list's filter form sends the parameters of ``GET /api/tasks`` under the same names,
with what a form adds: empty fields, local date-times without a zone (read as UTC, as the
page says), and the metadata filter as one ``KEY=VALUE`` field. They are turned into the
API's own query string and read by its parser, so both answer the same faults the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from litestar.datastructures import MultiDict

from taskflow.domain.errors import InvalidQuery, InvalidSubmission
from taskflow.domain.json_limits import json_problem
from taskflow.domain.model import TaskStatus
from taskflow.entrypoints.http.listing import METADATA_PREFIX, ListRequest, parse_list_request

#: The list's form fields, in the order the page shows them.
TEXT_FIELDS = ("type", "queue", "created_after", "created_before", "metadata")
_MOMENTS = ("created_after", "created_before")
_PASSED = ("cursor", "limit")


def list_params(params: MultiDict[str]) -> MultiDict[str]:
    """The API's query string for the form's fields; the rest (a notice) is left out."""
    items: list[tuple[str, str]] = [("status", s) for s in params.getall("status", []) if s]
    for name in (*TEXT_FIELDS, *_PASSED):
        raw = (params.get(name) or "").strip()
        if not raw:
            continue
        if name == "metadata":
            key, equals, value = raw.partition("=")
            if not equals or not key.strip():
                problem = f"metadata must be KEY=VALUE, got {raw[:64]!r}"
                raise InvalidQuery(problem, field="metadata")
            items.append((METADATA_PREFIX + key.strip(), value.strip()))
        elif name in _MOMENTS:
            items.append((name, _with_zone(raw)))
        else:
            items.append((name, raw))
    return MultiDict(items)


def list_request(params: MultiDict[str], *, tenant: str) -> ListRequest:
    return parse_list_request(list_params(params), tenant=tenant)


def form_values(params: MultiDict[str]) -> dict[str, Any]:
    """What the filter form shows again: each field as given, and the statuses ticked."""
    values: dict[str, Any] = {name: params.get(name) or "" for name in TEXT_FIELDS}
    values["status"] = {s for s in params.getall("status", []) if s in set(TaskStatus)}
    return values


def _with_zone(raw: str) -> str:
    """A browser's ``datetime-local`` value (``2026-12-01T10:00``) or a date (its midnight) as
    an RFC 3339 UTC instant; a value that names its zone is passed on as it is."""
    if raw.endswith(("Z", "z")) or "+" in raw[10:] or raw[10:].count("-"):
        return raw
    if len(raw) == len("YYYY-MM-DD"):
        raw += "T00:00"
    if len(raw) == len("YYYY-MM-DDTHH:MM"):
        raw += ":00"
    return raw + "+00:00"


def dashboard_path(wanted: str, default: str) -> str:
    """``wanted`` when it is a path of this dashboard (where an action or the sign-in may send
    the browser next), else ``default``: never another site (``//host``, ``/\\host``), never
    a header split by a line break."""
    is_ours = wanted == "/dashboard" or wanted.startswith("/dashboard/")
    if not is_ours or "//" in wanted or "\\" in wanted or not wanted.isprintable():
        return default
    return wanted


def task_id(raw: str) -> UUID:
    try:
        return UUID(raw.strip())
    except ValueError:
        raise InvalidSubmission(f"task id must be a UUID, got {raw[:64]!r}", field="id") from None


def edited_payload(form: Mapping[str, Any]) -> dict[str, Any] | None:
    """The edited payload of a retry form: None when the field is absent (retry as it was)."""
    raw = form.get("payload")
    if raw is None:
        return None
    document = str(raw).encode()
    refused = json_problem(document)  # the limits of an API body (docs/security.md)
    if refused is not None:
        raise InvalidSubmission(f"payload: {refused[1]}", field="payload")
    try:
        payload = msgspec.json.decode(document)
    except msgspec.DecodeError as exc:
        raise InvalidSubmission(f"payload is not valid JSON: {exc}", field="payload") from None
    if not isinstance(payload, dict):
        raise InvalidSubmission("payload must be a JSON object", field="payload")
    return payload
