"""Every limit on what a submission may say, stated once (docs/api.md, "The task").

The HTTP schema, the Registry, the services and the adapters read these constants and call
these checks; a literal ``9`` or ``25`` anywhere else would be a second copy of a rule.
Each ``*_problem`` function answers why a value is refused, or None when it is fine.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

TYPE_REGEX: Final = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$"
TYPE_PATTERN: Final = re.compile(TYPE_REGEX)
TYPE_MAX_LENGTH: Final = 128

QUEUE_REGEX: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
QUEUE_PATTERN: Final = re.compile(QUEUE_REGEX)
QUEUE_MAX_LENGTH: Final = 64
DEFAULT_QUEUE: Final = "default"

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
DEFAULT_PRIORITY: Final = 5

MAX_RETRIES_LIMIT: Final = 25
DEFAULT_MAX_RETRIES: Final = 3

#: The encoded size of ``metadata`` (docs/api.md, "The task"); the payload's is a setting.
MAX_METADATA_BYTES: Final = 16 * 1024


def payload_size_problem(size: int, limit: int) -> str | None:
    """``size``: the payload's bytes, encoded as JSON; ``limit``: TASKFLOW_MAX_PAYLOAD_BYTES."""
    if size > limit:
        return (
            f"payload is {size} bytes encoded; the limit is {limit} bytes "
            "(TASKFLOW_MAX_PAYLOAD_BYTES)"
        )
    return None


def metadata_size_problem(size: int) -> str | None:
    if size > MAX_METADATA_BYTES:
        return f"metadata must be at most {MAX_METADATA_BYTES} bytes encoded"
    return None


#: The encoded size of a handler's result (docs/security.md, "Limits on what a client sends").
MAX_RESULT_BYTES: Final = 1024 * 1024


def result_size_problem(size: int) -> str | None:
    if size > MAX_RESULT_BYTES:
        return f"the result is {size} bytes encoded; the limit is {MAX_RESULT_BYTES} bytes"
    return None


#: Submissions in one batch (docs/api.md, "HTTP API").
MAX_BATCH: Final = 1000

#: The tail of a handler's traceback kept with its failed attempt, in bytes of UTF-8.
MAX_TRACEBACK_BYTES: Final = 16 * 1024

#: How long an Idempotency-Key is remembered at least (docs/api.md, "HTTP API").
IDEMPOTENCY_KEY_TTL: Final = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX_LENGTH: Final = 255

#: Room for a W3C traceparent kept with a task (55 characters in version 00; later versions
#: may append fields). Only taskflow writes it, from the span it is in (decision 28).
TRACEPARENT_MAX_LENGTH: Final = 128
_PRINTABLE_ASCII: Final = re.compile(r"^[\x20-\x7e]+$")


def type_name_problem(name: str) -> str | None:
    if not name:
        return "type must not be empty"
    if len(name) > TYPE_MAX_LENGTH:
        return f"type must be at most {TYPE_MAX_LENGTH} characters"
    if not TYPE_PATTERN.fullmatch(name):
        return f"type must match {TYPE_REGEX}"
    return None


def queue_name_problem(name: str) -> str | None:
    if not 1 <= len(name) <= QUEUE_MAX_LENGTH or not QUEUE_PATTERN.fullmatch(name):
        return f"queue must be 1-{QUEUE_MAX_LENGTH} letters, digits, '_', '.' or '-'"
    return None


def priority_problem(priority: int) -> str | None:
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        return f"priority must lie in {MIN_PRIORITY}-{MAX_PRIORITY}"
    return None


def max_retries_problem(max_retries: int) -> str | None:
    if not 0 <= max_retries <= MAX_RETRIES_LIMIT:
        return f"max_retries must lie in 0-{MAX_RETRIES_LIMIT}"
    return None


def timeout_problem(timeout_seconds: float) -> str | None:
    if not timeout_seconds > 0:
        return "timeout_seconds must be positive"
    return None


def idempotency_key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        return f"an idempotency key must be 1-{IDEMPOTENCY_KEY_MAX_LENGTH} characters"
    if not _PRINTABLE_ASCII.fullmatch(key):
        return "an idempotency key must be printable ASCII"
    return None


def type_options_problem(
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
    timeout_seconds: float | None = None,
) -> tuple[str, str] | None:
    """The first refused option of a submission or a task type, as (field, why), or None."""
    found = [
        ("queue", None if queue is None else queue_name_problem(queue)),
        ("priority", None if priority is None else priority_problem(priority)),
        ("max_retries", None if max_retries is None else max_retries_problem(max_retries)),
        ("timeout_seconds", None if timeout_seconds is None else timeout_problem(timeout_seconds)),
    ]
    return next(((field, problem) for field, problem in found if problem), None)


#: Tasks on one page of a listing (docs/api.md, "GET /api/tasks").
LIST_LIMIT_MAX: Final = 500
LIST_LIMIT_DEFAULT: Final = 50


def list_limit_problem(limit: int) -> str | None:
    if not 1 <= limit <= LIST_LIMIT_MAX:
        return f"limit must lie in 1-{LIST_LIMIT_MAX}"
    return None


#: Tasks one bulk retry revives at most (docs/api.md, "POST /api/tasks/retry").
RETRY_MANY_LIMIT_MAX: Final = 1000
RETRY_MANY_LIMIT_DEFAULT: Final = 100


def retry_many_limit_problem(limit: int) -> str | None:
    if not 1 <= limit <= RETRY_MANY_LIMIT_MAX:
        return f"limit must lie in 1-{RETRY_MANY_LIMIT_MAX}"
    return None


#: Who made a change to a task, as the change history records it.
ACTOR_MAX_LENGTH: Final = 200


def actor_problem(actor: str) -> str | None:
    if not 1 <= len(actor) <= ACTOR_MAX_LENGTH or not _PRINTABLE_ASCII.fullmatch(actor):
        return f"the actor must be 1-{ACTOR_MAX_LENGTH} printable ASCII characters"
    return None
