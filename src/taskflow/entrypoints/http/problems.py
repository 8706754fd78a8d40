"""Every error the API returns, as RFC 9457 problem details; mapped here and nowhere else."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    InvalidSubmission,
    InvalidTransition,
    PayloadTooLarge,
    StaleTask,
    StoreUnavailable,
    TaskflowError,
    TaskNotFound,
)
from taskflow.entrypoints.http.schemas import FieldProblem, ProblemOut

log = logging.getLogger("taskflow.api")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"

_STATUS_OF: tuple[tuple[type[TaskflowError], int], ...] = (
    (InvalidSubmission, 400),
    (TaskNotFound, 404),
    (InvalidTransition, 409),
    (StaleTask, 409),
    (DuplicateTask, 409),
    (IdempotencyKeyReused, 422),
    (PayloadTooLarge, 413),
    (StoreUnavailable, 503),
)
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


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


def on_domain_error(request: Request[Any, Any, Any], exc: TaskflowError) -> Response[ProblemOut]:
    status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 500)
    if status == 503:
        log.warning("store unavailable", extra={"path": request.url.path, "error": exc.message})
        return problem(503, exc.message, headers={"Retry-After": RETRY_AFTER_SECONDS})
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
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or str(exc.detail)
    return problem(400, detail, errors=errors)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ProblemOut]:
    if isinstance(exc.__cause__, SerializationException):
        detail = f"the request body is not valid JSON: {exc.detail}"
        return problem(400, detail, errors=[FieldProblem("body", detail)])
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers or None)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemOut]:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem(500, "internal error")


def _field_problem(item: dict[str, object]) -> FieldProblem:
    message = str(item.get("message", "invalid"))
    key = str(item.get("key") or "body")
    named = _NAMED_FIELD.search(message)
    if key == "data":
        key = named.group(1) if named else "body"
    return FieldProblem(key, message)


EXCEPTION_HANDLERS = {
    TaskflowError: on_domain_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
