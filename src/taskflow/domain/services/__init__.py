"""Use cases, written against the ports only.

``TaskService`` serves producers and operators (submit, get, cancel, retry); ``ExecutionService``
serves workers and the sweep (claim, outcomes, leases, recovery); ``RetentionService`` deletes
the finished tasks kept long enough.
"""

from taskflow.domain.services.building import Submission, SubmitTask, TaskBuilder
from taskflow.domain.services.dispatching import dispatch
from taskflow.domain.services.execution import (
    Claim,
    ExecutionService,
    LostLease,
    Reconciled,
)
from taskflow.domain.services.retention import RetentionService
from taskflow.domain.services.scheduling import SchedulePass, ScheduleService, ScheduleView
from taskflow.domain.services.submission import TaskService

__all__ = [
    "Claim",
    "ExecutionService",
    "LostLease",
    "Reconciled",
    "RetentionService",
    "SchedulePass",
    "ScheduleService",
    "ScheduleView",
    "Submission",
    "SubmitTask",
    "TaskBuilder",
    "TaskService",
    "dispatch",
]
