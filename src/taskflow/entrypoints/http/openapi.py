"""What the OpenAPI document says beyond the handlers' signatures (docs/api.md, "OpenAPI").

- ``problem_responses``: the problem+json answers a route may give, so that Litestar's own
  ``ValidationException`` schema (which no client of ours ever receives) is replaced.
- ``SubmissionSchemaPlugin``: a submission body as one schema per registered task type, chosen
  by ``type``; built per app, since the registry is the container's.
- ``ListTasksOperation``, ``SubmitOperation`` and ``ActorOperation``: the query parameters and
  headers the handlers read by hand, described without making Litestar parse them on each
  request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from taskflow.domain.limits import (
    ACTOR_MAX_LENGTH,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    QUEUE_MAX_LENGTH,
    QUEUE_REGEX,
    TYPE_MAX_LENGTH,
    TYPE_REGEX,
)
from taskflow.domain.model import TaskStatus
from taskflow.entrypoints.http.problems import PROBLEM_JSON
from taskflow.entrypoints.http.retrying import ACTOR_HEADER
from taskflow.entrypoints.http.schemas import ProblemOut, SubmitTaskIn
from taskflow.registry import Registry

_WHEN: Final = {
    400: "Something in the request is wrong; `errors` names each field at fault.",
    401: "API keys are in use and the request has none, or one that is wrong or revoked.",
    403: "The API key lacks the scope this route needs; `detail` names it.",
    404: "No task has that id (no schedule has that name, no API key that id).",
    408: "The body did not arrive within TASKFLOW_BODY_TIMEOUT_SECONDS; the connection closes.",
    409: "The task's status does not allow it, or a concurrent change won; see `detail`.",
    413: "The body or a payload is over its limit; `detail` states the size and the limit.",
    415: "The Content-Type is missing or not JSON.",
    422: "The Idempotency-Key was used before with another body.",
    429: "The key's tenant is over one of its quotas (tasks per second or unfinished tasks); "
    "nothing was stored. Retry after the Retry-After seconds.",
    503: "The database is unreachable; retry after the Retry-After seconds.",
}


#: What every route behind an API key may answer besides its own problems (decision 30).
KEY_PROBLEMS: Final = (401, 403)


def problem_responses(*statuses: int, key_needed: bool = True) -> dict[int, ResponseSpec]:
    """The route's error answers, each an RFC 9457 problem (``ProblemOut``); with
    ``key_needed`` (every route but the open ones), also the answers of the key check."""
    if key_needed:
        statuses = tuple(sorted({*statuses, *KEY_PROBLEMS}))
    return {
        status: ResponseSpec(
            data_container=ProblemOut,
            media_type=PROBLEM_JSON,
            description=f"{HTTPStatus(status).phrase}. {_WHEN[status]}",
            generate_examples=False,
        )
        for status in statuses
    }


SUBMIT_PROBLEMS: Final = (400, 408, 409, 413, 415, 422, 429, 503)


# --- the submission body, per task type ---

# Every field of a submission but the two a type decides, taken from the Struct itself.
_COMMON_FIELDS: Final = tuple(
    (f.name, f.type, f.default)
    for f in msgspec.structs.fields(SubmitTaskIn)
    if f.name not in ("type", "payload")
)


def submission_variants(registry: Registry) -> dict[str, type[msgspec.Struct]]:
    """One Struct per registered type, named after it: ``billing.send_invoice`` gives
    ``BillingSendInvoiceSubmission``. They describe; the API still decodes ``SubmitTaskIn``."""
    variants: dict[str, type[msgspec.Struct]] = {}
    taken: set[str] = set()
    for kind in sorted(registry, key=lambda k: k.name):
        name = _unique(_class_name(kind.name), taken)
        payload = dict[str, Any] if kind.payload_type is dict else kind.payload_type
        variants[kind.name] = msgspec.defstruct(
            name,
            [("type", Literal[kind.name]), ("payload", payload), *_COMMON_FIELDS],
            kw_only=True,
            forbid_unknown_fields=True,
            module=__name__,
        )
    return variants


def _class_name(type_name: str) -> str:
    words = re.split(r"[._]+", type_name)
    return "".join(word[:1].upper() + word[1:] for word in words if word) + "Submission"


def _unique(name: str, taken: set[str]) -> str:
    # "a.b_c" and "a_b.c" both read ABC: the later one (by name) gets a number.
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}{number}"
    taken.add(candidate)
    return candidate


class SubmissionSchemaPlugin(OpenAPISchemaPlugin):
    """Describes ``SubmitTaskIn`` as a ``oneOf`` of the registered types, discriminated by
    ``type``; with no type registered, Litestar's own schema of the Struct stands."""

    def __init__(self, registry: Registry) -> None:
        self._variants = submission_variants(registry)

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return bool(self._variants) and field_definition.annotation is SubmitTaskIn

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        one_of: list[Schema | Reference] = []
        mapping: dict[str, str] = {}
        for type_name, variant in self._variants.items():
            one_of.append(
                schema_creator.for_field_definition(FieldDefinition.from_annotation(variant))
            )
            mapping[type_name] = f"#/components/schemas/{variant.__name__}"
        return Schema(
            one_of=one_of,
            discriminator=Discriminator(property_name="type", mapping=mapping),
            description="A submission of one of the registered task types, chosen by `type`.",
        )


# --- parameters and headers the handlers read by hand ---


def _query(name: str, schema: Schema, description: str) -> Parameter:
    return Parameter(name=name, param_in="query", schema=schema, description=description)


_TIMESTAMP = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME)

LIST_PARAMETERS: Final = (
    Parameter(
        name="status",
        param_in="query",
        schema=Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(type=OpenAPIType.STRING, enum=[s.value for s in TaskStatus]),
        ),
        style="form",
        explode=True,
        description="Only tasks in one of these statuses; repeat the parameter for several.",
    ),
    _query(
        "type",
        Schema(
            type=OpenAPIType.STRING, min_length=1, max_length=TYPE_MAX_LENGTH, pattern=TYPE_REGEX
        ),
        "Only tasks of this type.",
    ),
    _query(
        "queue",
        Schema(
            type=OpenAPIType.STRING, min_length=1, max_length=QUEUE_MAX_LENGTH, pattern=QUEUE_REGEX
        ),
        "Only tasks on this queue.",
    ),
    _query(
        "created_after",
        _TIMESTAMP,
        "Only tasks created strictly after this RFC 3339 instant (with a time zone).",
    ),
    _query(
        "created_before",
        _TIMESTAMP,
        "Only tasks created strictly before this RFC 3339 instant (with a time zone).",
    ),
    _query(
        "limit",
        Schema(
            type=OpenAPIType.INTEGER, minimum=1, maximum=LIST_LIMIT_MAX, default=LIST_LIMIT_DEFAULT
        ),
        "Tasks on a page.",
    ),
    _query(
        "cursor",
        Schema(type=OpenAPIType.STRING),
        "The next_cursor of the previous page, given with the same filters.",
    ),
)

METADATA_FILTERS: Final = (
    "`metadata.KEY=VALUE` (any number, names of your own) keeps the tasks whose metadata has "
    "the top-level key KEY equal to VALUE, read as text or as the JSON scalar it spells."
)

IDEMPOTENCY_KEY_HEADER: Final = Parameter(
    name="Idempotency-Key",
    param_in="header",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH),
    description="Makes the request safe to repeat: the same key and body answer the same "
    "task(s) again, with Idempotent-Replayed: true.",
)

ACTOR_PARAMETER: Final = Parameter(
    name=ACTOR_HEADER,
    param_in="header",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=ACTOR_MAX_LENGTH),
    description="Who asks, as recorded in the task's changes (printable ASCII); "
    "the client's address when absent.",
)

_REPLAYED = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
    description="Present when the answer replays an earlier request with this Idempotency-Key.",
)
_LOCATION = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING), description="The new task's URL: /api/tasks/{id}."
)


def _add_success_headers(operation: Operation, headers: dict[str, OpenAPIHeader]) -> None:
    for status, answer in (operation.responses or {}).items():
        if status.startswith("2") and not isinstance(answer, Reference):
            answer.headers = {**headers, **(answer.headers or {})}


@dataclass
class ListTasksOperation(Operation):
    """``GET /api/tasks``: its query parameters, parsed by hand (listing.py)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), *LIST_PARAMETERS]
        self.description = "\n\n".join(filter(None, [self.description, METADATA_FILTERS]))


@dataclass
class SubmitOperation(Operation):
    """``POST /api/tasks/batch``: the Idempotency-Key header, and the header of a replay."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY_HEADER]
        _add_success_headers(self, {"Idempotent-Replayed": _REPLAYED})


@dataclass
class SubmitOneOperation(Operation):
    """``POST /api/tasks``: as a batch, and the new task's Location."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY_HEADER]
        _add_success_headers(self, {"Location": _LOCATION, "Idempotent-Replayed": _REPLAYED})


@dataclass
class ActorOperation(Operation):
    """The retry routes: the Taskflow-Actor header, read by hand (retrying.py)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), ACTOR_PARAMETER]
