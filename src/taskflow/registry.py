"""The registry of task types and their handlers (docs/api.md, "Python API")."""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar, Unpack

import msgspec

from taskflow.client import AsyncClient, Client, Payload, SubmitOptions, Task
from taskflow.client.errors import refused_locally
from taskflow.domain.errors import InvalidPayload
from taskflow.domain.flow import FlowLimits, FlowPolicy
from taskflow.domain.keys import DEFAULT_TENANT
from taskflow.domain.limits import queue_name_problem, type_name_problem, type_options_problem
from taskflow.handlers import TaskContext
from taskflow.schedules import Schedule
from taskflow.validation_errors import describe

Handler = Callable[..., Any]
PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """One registered task type: its handler, its payload schema and its defaults."""

    name: str
    handler: Handler
    payload_type: Any = dict
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    backoff_base: float | None = None
    backoff_max: float | None = None
    is_async: bool = field(default=False)
    flow: FlowLimits = field(default_factory=FlowLimits)  # rate and concurrency limits

    def decode(self, payload: Mapping[str, Any]) -> Any:
        """The handler's input: the payload converted to the annotated type."""
        if self.payload_type is dict:
            return dict(payload)
        try:
            return msgspec.convert(payload, self.payload_type, strict=False)
        except msgspec.ValidationError as exc:
            field, sentence = describe(str(exc), root="payload")
            raise InvalidPayload(sentence, field=field) from None

    def validate(self, payload: Mapping[str, Any]) -> None:
        self.decode(payload)

    def outgoing(self, payload: object) -> dict[str, Any]:
        """``payload`` as a submission will carry it, once it is known to fit this type.

        ``TypeError`` for a value of another kind; the client's ``InvalidSubmission``, as the
        API would answer, for one that does not fit the schema.
        """
        expected = self.payload_type
        if not isinstance(payload, Mapping) and not (
            isinstance(expected, type) and isinstance(payload, expected)
        ):
            wanted = getattr(expected, "__name__", str(expected))
            raise TypeError(
                f"{self.name}: the payload must be {wanted}, got {type(payload).__name__}"
            )
        raw = msgspec.to_builtins(payload)
        try:
            self.validate(raw)
        except InvalidPayload as exc:
            raise refused_locally(exc.field or "payload", exc.message) from None
        return dict(raw)

    def payload_schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload: the annotated Struct's, or any JSON object."""
        schema: dict[str, Any] = msgspec.json.schema(self.payload_type)
        return schema


class DeclaredTask(Generic[PayloadT, ResultT]):
    """A registered task type, as ``@tasks.task(...)`` returns it.

    Calling it calls the handler, as before it was registered. ``enqueue`` submits a task of
    this type through a client; its payload has the handler's payload type, so mypy refuses
    a wrong one, and it is checked against that type before it is sent.
    """

    def __init__(
        self, definition: TaskDefinition, handler: Callable[[PayloadT, TaskContext], ResultT]
    ) -> None:
        self.definition = definition
        self._handler = handler
        functools.update_wrapper(self, handler)

    @property
    def name(self) -> str:
        """The task type."""
        return self.definition.name

    def __call__(self, payload: PayloadT, ctx: TaskContext) -> ResultT:
        return self._handler(payload, ctx)

    def enqueue(
        self, payload: PayloadT, *, client: Client, **options: Unpack[SubmitOptions]
    ) -> Task:
        """Submit a task of this type with ``client``; the options are those of ``submit``."""
        return client.submit(self.name, self._outgoing(payload), **options)

    async def enqueue_async(
        self, payload: PayloadT, *, client: AsyncClient, **options: Unpack[SubmitOptions]
    ) -> Task:
        """``enqueue`` with an :class:`~taskflow.client.AsyncClient`."""
        return await client.submit(self.name, self._outgoing(payload), **options)

    def _outgoing(self, payload: PayloadT) -> Payload:
        return self.definition.outgoing(payload)


class Registry:
    """Maps task type names to handlers.

    >>> tasks = Registry()
    >>> @tasks.task("billing.send_invoice", max_retries=5)
    ... async def send_invoice(payload: Invoice, ctx: TaskContext) -> dict: ...
    """

    def __init__(self) -> None:
        self._definitions: dict[str, TaskDefinition] = {}
        self._schedules: dict[str, Schedule] = {}
        self._queues: dict[str, FlowLimits] = {}

    def task(
        self,
        name: str,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        rate_limit: str | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> Callable[[Callable[[PayloadT, TaskContext], ResultT]], DeclaredTask[PayloadT, ResultT]]:
        """Register the decorated function as the handler of task type ``name``; it becomes a
        :class:`DeclaredTask`, still callable as the function was.

        ``rate_limit`` (``"10/s"``, ``"N/m"``, ``"N/h"``: at most N starts per period, N at
        once) and ``concurrency`` (at most N running, per value of ``payload[concurrency_key]``
        when given) hold across every worker (docs/api.md, "Flow control").
        """
        _check_options(name, queue, priority, max_retries, timeout_seconds)
        _check_backoff(name, backoff_base, backoff_max)
        flow = _flow(repr(name), rate_limit, concurrency, concurrency_key)

        def register(
            handler: Callable[[PayloadT, TaskContext], ResultT],
        ) -> DeclaredTask[PayloadT, ResultT]:
            if isinstance(handler, DeclaredTask):  # one function, declared in two registries
                handler = handler.definition.handler
            definition = TaskDefinition(
                name=name,
                handler=handler,
                payload_type=_payload_type(handler),
                queue=queue,
                priority=priority,
                max_retries=max_retries,
                timeout_seconds=timeout_seconds,
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                is_async=inspect.iscoroutinefunction(handler),
                flow=flow,
            )
            self.add(definition)
            return DeclaredTask(definition, handler)

        return register

    def periodic(
        self,
        name: str,
        *,
        type: str,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        catchup: timedelta | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Schedule:
        """Submit a task of ``type`` at each tick of ``cron`` (read in ``timezone``) or of
        ``every``: exactly one task per tick, however many workers run. ``catchup``: how old
        a tick missed during downtime may be and still be enqueued (default: the setting
        ``TASKFLOW_SCHEDULE_CATCHUP_SECONDS``). ``tenant``: whose tasks the ticks make; only
        that tenant's keys see and pause the schedule. ``ValueError`` names a bad option; a
        type no registry knows is refused when a process starts."""
        schedule = Schedule(
            name=name,
            type=type,
            payload={} if payload is None else payload,
            cron=cron,
            every=every,
            timezone=timezone,
            queue=queue,
            priority=priority,
            catchup=catchup,
            tenant=tenant,
        )
        self.add_schedule(schedule)
        return schedule

    def add_schedule(self, schedule: Schedule) -> None:
        if schedule.name in self._schedules:
            raise ValueError(f"schedule {schedule.name!r} is registered twice")
        self._schedules[schedule.name] = schedule

    @property
    def schedules(self) -> list[Schedule]:
        """The periodic tasks, in the order they were registered."""
        return list(self._schedules.values())

    def queue(
        self, name: str, *, rate_limit: str | None = None, concurrency: int | None = None
    ) -> None:
        """Limit the starts (``rate_limit``) and running tasks (``concurrency``) of queue
        ``name`` across every worker; ``TASKFLOW_QUEUE_LIMITS`` overrides these."""
        problem = queue_name_problem(name)
        if problem:
            raise ValueError(f"queue {name!r}: {problem}")
        self._queues[name] = _flow(f"queue {name!r}", rate_limit, concurrency, None)

    def flow_policy(self, overrides: Mapping[str, FlowLimits] | None = None) -> FlowPolicy:
        """Every limit declared here, queue limits overridden per queue by ``overrides``."""
        queues = dict(self._queues)
        for queue, limits in (overrides or {}).items():
            queues[queue] = queues.get(queue, FlowLimits()).merged(limits)
        return FlowPolicy(queues=queues, types={d.name: d.flow for d in self})

    def add(self, definition: TaskDefinition) -> None:
        if definition.name in self._definitions:
            raise ValueError(f"task type {definition.name!r} is registered twice")
        self._definitions[definition.name] = definition

    def include(self, other: Registry) -> None:
        """Register every type of ``other`` here too."""
        for definition in other:
            self.add(definition)
        for schedule in other.schedules:
            self.add_schedule(schedule)
        for queue, limits in other._queues.items():
            if self._queues.get(queue, limits) != limits:
                raise ValueError(f"queue {queue!r} has other limits in each registry")
            self._queues[queue] = limits

    def get(self, name: str) -> TaskDefinition | None:
        return self._definitions.get(name)

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(self._definitions.values())

    def __len__(self) -> int:
        return len(self._definitions)

    def __contains__(self, name: object) -> bool:
        return name in self._definitions


def _payload_type(handler: Handler) -> Any:
    parameters = list(inspect.signature(handler).parameters.values())
    if len(parameters) != 2:
        raise TypeError(f"handler {handler.__qualname__} must take (payload, ctx)")
    try:
        hints = typing.get_type_hints(handler)
    except NameError as exc:
        raise TypeError(f"handler {handler.__qualname__}: unresolvable annotation: {exc}") from None
    annotation = hints.get(parameters[0].name, dict)
    origin = typing.get_origin(annotation) or annotation
    if annotation is Any or origin in (dict, Mapping):
        return dict
    return annotation


def _flow(
    owner: str, rate_limit: str | None, concurrency: int | None, concurrency_key: str | None
) -> FlowLimits:
    try:
        return FlowLimits.declared(
            rate_limit=rate_limit, concurrency=concurrency, concurrency_key=concurrency_key
        )
    except ValueError as exc:
        raise ValueError(f"{owner}: {exc}") from None


def _check_backoff(name: str, base: float | None, max_: float | None) -> None:
    for option, value in (("backoff_base", base), ("backoff_max", max_)):
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"{name!r}: {option} must be a positive number of seconds")
    if base is not None and max_ is not None and max_ < base:
        raise ValueError(f"{name!r}: backoff_max must be at least backoff_base")


def _check_options(
    name: str,
    queue: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout_seconds: float | None,
) -> None:
    problem = type_name_problem(name)
    if problem:
        raise ValueError(f"{name!r}: {problem}")
    refused = type_options_problem(
        queue=queue, priority=priority, max_retries=max_retries, timeout_seconds=timeout_seconds
    )
    if refused:
        raise ValueError(f"{name!r}: {refused[1]}")
