"""Every failure the domain can report. Each docstring is the default message."""

from __future__ import annotations

from uuid import UUID


class TaskflowError(Exception):
    """Something went wrong in taskflow."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidTransition(TaskflowError):
    """This change does not fit the task's current status."""


class NotDue(TaskflowError):
    """The task may not be claimed before its run_at."""


class InvariantViolated(TaskflowError):
    """A task would break one of its invariants."""


class TaskNotFound(TaskflowError):
    """No task has this id."""


class ScheduleNotFound(TaskflowError):
    """No periodic schedule has this name."""


class KeyNotFound(TaskflowError):
    """No API key has this id."""


class DuplicateTask(TaskflowError):
    """A task with this id exists already."""


class StaleTask(TaskflowError):
    """The task changed since it was read; the write was refused."""


class LeaseLost(TaskflowError):
    """This worker no longer holds the task's lease; its outcome was discarded."""


class InvalidSubmission(TaskflowError):
    """The submission is not valid."""

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def under(self, parent: str) -> InvalidSubmission:
        """This error as part ``parent`` of a larger request (``tasks[3]`` of a batch): the
        field becomes ``tasks[3].payload.a``, and so does the field named in the message."""
        field = f"{parent}.{self.field}" if self.field else parent
        message = self.message
        if self.field and message.startswith(self.field):
            message = field + message[len(self.field) :]
        return type(self)(message, field=field)


class UnknownTaskType(InvalidSubmission):
    """No handler is registered for this task type."""

    def __init__(self, message: str | None = None, *, field: str | None = "type") -> None:
        super().__init__(message, field=field)


class InvalidPayload(InvalidSubmission):
    """The payload does not match its task type's schema."""


class UnstorableValue(InvalidSubmission):
    """A value holds the character U+0000, which the task store cannot keep."""

    def __init__(
        self, message: str | None = None, *, field: str | None = None, task_id: UUID | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.task_id = task_id  # the task whose value it is, when the store took several


class PayloadTooLarge(InvalidSubmission):
    """The payload is larger than allowed."""


class StoreUnavailable(TaskflowError):
    """The task store cannot be reached."""


class StoreNotMigrated(TaskflowError):
    """The task store lacks a table or column this taskflow uses: run `taskflow migrate`."""


class QueueUnavailable(TaskflowError):
    """The dispatch queue cannot be reached."""


class QuotaExceeded(TaskflowError):
    """The tenant is over one of its quotas; nothing was stored."""

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # whole seconds before a try may pass


class IdempotencyKeyReused(TaskflowError):
    """This Idempotency-Key was used before with a different request."""


class InvalidQuery(InvalidSubmission):
    """The query is not valid."""

    # A kind of InvalidSubmission so that it is answered as every other fault in a request is:
    # a 400 naming ``field``, the parameter at fault.
