"""Path parameters as the OpenAPI document states them.

The handlers take them as plain strings and check them themselves, so that a bad one gets a 400
naming it (``parse_task_id``, ``queue_name_problem``); the document still says exactly what is
valid, so that clients, and fuzzers such as Schemathesis, need not guess.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from taskflow.domain.limits import QUEUE_MAX_LENGTH, QUEUE_REGEX

TaskIdPath = Annotated[
    str, Parameter(description="The task's id, a UUID.", schema_extra={"format": "uuid"})
]
KeyIdPath = Annotated[
    str, Parameter(description="The API key's id, a UUID.", schema_extra={"format": "uuid"})
]
QueueNamePath = Annotated[
    str,
    Parameter(
        description="The queue's name.",
        schema_extra={"minLength": 1, "maxLength": QUEUE_MAX_LENGTH, "pattern": QUEUE_REGEX},
    ),
]
