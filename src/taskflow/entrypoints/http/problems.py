"""Every error the API returns, as RFC 9457 problem details; mapped here and nowhere else."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    InvalidSubmission,
    InvalidTransition,
    KeyNotFound,
    PayloadTooLarge,
    QueueUnavailable,
    QuotaExceeded,
    ScheduleNotFound,
    StaleTask,
    StoreUnavailable,
    TaskflowError,
    TaskNotFound,
)
from taskflow.entrypoints.http.schemas import FieldProblem, ProblemOut
from taskflow.validation_errors import describe

log = logging.getLogger("taskflow.api")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"

_STATUS_OF: tuple[tuple[type[TaskflowError], int], ...] = (
    (PayloadTooLarge, 413),  # before InvalidSubmission, of which it is a kind
    (InvalidSubmission, 400),
    (TaskNotFound, 404),
    (ScheduleNotFound, 404),
    (KeyNotFound, 404),
    (InvalidTransition, 409),
    (StaleTask, 409),
    (DuplicateTask, 409),
    (IdempotencyKeyReused, 422),
    (QuotaExceeded, 429),
    (StoreUnavailable, 503),
    (QueueUnavailable, 503),  # the queue and worker figures read Redis
)


def problem(
    status: int,
    detail: str,
    *,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ProblemOut]:
    body = ProblemOut(
        title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors or []
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(exc: TaskflowError) -> int:
    """The HTTP status a domain error is answered with (the dashboard's pages use it too)."""
    return next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 500)


def on_domain_error(request: Request[Any, Any, Any], exc: TaskflowError) -> Response[ProblemOut]:
    status = status_of(exc)
    if status == 503:
        facts = {"path": request.url.path, "error": exc.message}
        log.warning("store or queue unavailable", extra=facts)
        return problem(503, exc.message, headers={"Retry-After": RETRY_AFTER_SECONDS})
    if isinstance(exc, QuotaExceeded):
        return problem(429, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if status == 500:
        log.error("unexpected domain error", exc_info=exc)
        return problem(500, "internal error")
    field = getattr(exc, "field", None)
    errors = [FieldProblem(field, exc.message)] if field else None
    return problem(status, exc.message, errors=errors)


def on_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ProblemOut]:
    errors = [_field_problem(item) for item in (exc.extra or []) if isinstance(item, dict)]
    if not errors:
        errors = [FieldProblem("body", "the request body is invalid")]
    return problem(400, "; ".join(e.message for e in errors), errors=errors)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ProblemOut]:
    if isinstance(exc.__cause__, SerializationException):
        reason = str(exc.detail).removeprefix("JSON is malformed: ")
        detail = f"the request body is not valid JSON: {reason}{_number_hint(reason)}"
        return problem(400, detail, errors=[FieldProblem("body", detail)])
    if exc.status_code == 413:  # said before the rest is read: the connection closes
        return problem(413, _body_too_large(request), headers={"Connection": "close"})
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers or None)


def _body_too_large(request: Request[Any, Any, Any]) -> str:
    limit = request.app.state.limits.max_body_bytes
    size = request.headers.get("content-length")
    said = f"is {size} bytes" if size and size.isdigit() else "is too large"
    return f"the request body {said}; the limit is {limit} bytes (TASKFLOW_MAX_BODY_BYTES)"


def _number_hint(reason: str) -> str:
    if reason.startswith(("Number out of range", "invalid character")):
        return " (NaN and Infinity are not JSON; a number must be finite, at most ~1.8e308)"
    return ""


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemOut]:
    if isinstance(exc, RecursionError):  # a document nested past the decoder's stack
        detail = "the request body nests too deeply (see the JSON nesting limit)"
        return problem(400, detail, errors=[FieldProblem("body", detail)])
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem(500, "internal error")


def _field_problem(item: dict[str, object]) -> FieldProblem:
    message = str(item.get("message", "invalid"))
    key = str(item.get("key") or "")
    if message == "'data'":  # Litestar's word for a body that is not there at all
        return FieldProblem("body", "the request body is empty; send a JSON object")
    field, sentence = describe(message, root="" if key in ("data", "body") else key)
    return FieldProblem(field, sentence)


EXCEPTION_HANDLERS = {
    TaskflowError: on_domain_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
