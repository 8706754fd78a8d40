"""The API's errors as exceptions: one class per kind of problem (docs/api.md, "Errors").

Every error answer raises an :class:`ApiError`; the statuses a caller can act on raise a
subclass, so ``except NotFound:`` says what it handles. A connection that fails raises the
``httpx`` error once the client's retries are spent.
"""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One fault in a request: a path from the body's root (``payload.email``) and a sentence."""

    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details, as the API sends them."""

    status: int
    title: str = ""
    detail: str = ""
    type: str = "about:blank"
    errors: list[FieldError] = msgspec.field(default_factory=list)


class ApiError(Exception):
    """The API answered with an error."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(f"HTTP {status}: {problem.detail or problem.title or self.__doc__}")
        self.status = status
        self.problem = problem


class InvalidRequest(ApiError):
    """The API refused something in the request (400); ``errors`` names each field at fault."""

    @property
    def errors(self) -> list[FieldError]:
        return self.problem.errors


class InvalidSubmission(InvalidRequest):
    """A submission was refused (400): unknown type, payload off its schema, option out of range.

    Raised by ``submit``, ``submit_many``, ``retry`` with a payload, and by a declared task's
    ``enqueue`` when the payload does not fit its type before anything is sent.
    """


class NotFound(ApiError):
    """No task has this id (404)."""


class Conflict(ApiError):
    """The task's status does not allow this change, or it changed at the same moment (409)."""


class PayloadTooLarge(ApiError):
    """The request body or the payload is over its limit (413)."""


class IdempotencyKeyReused(ApiError):
    """This Idempotency-Key was used before with another body (422)."""


class QuotaExceeded(ApiError):
    """The key's tenant is over one of its quotas (429): tasks per second or unfinished tasks.

    Nothing was stored. The client does not try again by itself: ``retry_after`` says how many
    seconds to wait before a try may pass (None when the answer did not say)."""

    def __init__(self, status: int, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """The API cannot serve the request now (503); try again after ``retry_after`` seconds."""

    def __init__(self, status: int, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


_BY_STATUS: dict[int, type[ApiError]] = {
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: IdempotencyKeyReused,
}


def error_for(
    status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
    refused: type[InvalidRequest] = InvalidRequest,
) -> ApiError:
    """The exception of an error answer; a 400 raises ``refused``, the class of its route."""
    problem = _problem(status, body)
    if status == 503:
        return Unavailable(status, problem, retry_after=retry_after)
    if status == 429:
        return QuotaExceeded(status, problem, retry_after=retry_after)
    if status == 400:
        return refused(status, problem)
    return _BY_STATUS.get(status, ApiError)(status, problem)


def refused_locally(field: str, message: str) -> InvalidSubmission:
    """The 400 the API would answer, for a payload the client can tell is wrong already."""
    problem = Problem(
        status=400, title="Bad Request", detail=message, errors=[FieldError(field, message)]
    )
    return InvalidSubmission(400, problem)


def _problem(status: int, body: bytes) -> Problem:
    try:
        problem = msgspec.json.decode(body, type=Problem)
    except msgspec.DecodeError:
        # Not taskflow's answer (a proxy's page, say): keep the start of its text.
        return Problem(status=status, detail=body[:300].decode("utf-8", "replace").strip())
    return problem
