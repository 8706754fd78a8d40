"""Flow control: rate and concurrency limits on queues and task types (docs/api.md, "Flow
control"; decision 21).

Pure values and rules. Which limits bind a task is decided here; a `FlowLimiter` adapter only
counts against them, atomically for every worker.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from uuid import UUID

from taskflow.domain.limits import queue_name_problem
from taskflow.domain.model import TaskStatus

#: Seconds in each unit a rate may be written in (``10/s``, ``600/m``, ``1000/h``).
RATE_UNITS: Final[Mapping[str, float]] = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE: Final = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
MAX_RATE_COUNT: Final = 1_000_000
MAX_CONCURRENCY: Final = 100_000
#: A key value longer than this is named by its digest instead (it becomes part of a key name).
MAX_KEY_VALUE_CHARS: Final = 200


class Limited(Protocol):
    """What decides the limits of a task: a `Task`, or the `Popped` head of one."""

    @property
    def type(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Popped:
    """The little a worker reads of a popped task before asking the limiter: what decides its
    limits, and, should it be held back, where it goes back in the queue. ``payload`` holds the
    fields the concurrency keys name, or more."""

    id: UUID
    type: str
    queue: str
    priority: int
    status: TaskStatus
    attempts: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Unread:
    """A task known by its queue and type only (no payload is needed for its limits)."""

    type: str
    queue: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` starts per ``per_seconds``, up to ``count`` of them at once (the burst)."""

    count: int
    per_seconds: float

    @property
    def interval(self) -> float:
        """Seconds between two starts at the steady pace."""
        return self.per_seconds / self.count

    @property
    def burst(self) -> int:
        return self.count

    def __str__(self) -> str:
        unit = next(u for u, s in RATE_UNITS.items() if s == self.per_seconds)
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"10/s"`` → ``Rate(10, 1.0)``; ValueError saying what is wrong."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"must look like N/s, N/m or N/h, got {text!r}")
    count = int(match.group(1))
    if not 1 <= count <= MAX_RATE_COUNT:
        raise ValueError(f"must allow between 1 and {MAX_RATE_COUNT} starts, got {text!r}")
    return Rate(count, RATE_UNITS[match.group(2)])


def check_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(f"must be a whole number between 1 and {MAX_CONCURRENCY}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowLimits:
    """The limits declared on one queue or one task type; None: no such limit."""

    rate: Rate | None = None
    concurrency: int | None = None
    concurrency_key: str | None = None  # types only: the payload field slots are counted by

    @classmethod
    def declared(
        cls,
        *,
        rate_limit: str | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> FlowLimits:
        """Checked limits from the Registry's options; ValueError naming the option."""
        rate = None
        if rate_limit is not None:
            try:
                rate = parse_rate(rate_limit)
            except ValueError as exc:
                raise ValueError(f"rate_limit {exc}") from None
        if concurrency is not None:
            try:
                check_concurrency(concurrency)
            except ValueError as exc:
                raise ValueError(f"concurrency {exc}") from None
        if concurrency_key is not None:
            if not isinstance(concurrency_key, str) or not concurrency_key:
                raise ValueError("concurrency_key must be the name of a payload field")
            if concurrency is None:
                raise ValueError("concurrency_key needs concurrency (the slots per key value)")
        return cls(rate=rate, concurrency=concurrency, concurrency_key=concurrency_key)

    def __bool__(self) -> bool:
        return self.rate is not None or self.concurrency is not None

    def merged(self, override: FlowLimits) -> FlowLimits:
        """These limits with those ``override`` sets replacing them."""
        return FlowLimits(
            rate=override.rate or self.rate,
            concurrency=override.concurrency or self.concurrency,
            concurrency_key=override.concurrency_key or self.concurrency_key,
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter a task must pass: a rate bucket or a set of concurrency slots, by name.

    Names are the limiter's keys: every worker that computes them for the same task and
    configuration computes the same ones.
    """

    name: str
    rate: Rate | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """What the limiter said of a batch: the tasks admitted (their slots now held), and for each
    throttled one how long it must wait at least (seconds; None: until a slot frees)."""

    admitted: frozenset[UUID]
    rate_waits: Mapping[UUID, float] = field(default_factory=dict)
    busy: frozenset[UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class FlowPolicy:
    """Every limit of a deployment: per queue (Registry, then settings) and per task type."""

    queues: Mapping[str, FlowLimits] = field(default_factory=dict)
    types: Mapping[str, FlowLimits] = field(default_factory=dict)
    # The limits of each (queue, type) whose limits no payload decides: a claim asks for them
    # for every task it pops.
    _known: dict[tuple[str, str], tuple[Limit, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Only what limits something is kept, so an empty policy is falsy and costs nothing.
        object.__setattr__(self, "queues", {q: f for q, f in self.queues.items() if f})
        object.__setattr__(self, "types", {t: f for t, f in self.types.items() if f})

    def __bool__(self) -> bool:
        return bool(self.queues or self.types)

    def applies_to(self, queues: Sequence[str]) -> bool:
        """Whether a worker serving ``queues`` may meet a limited task (a type's tasks may be
        submitted to any queue, so any type limit counts)."""
        return bool(self.types) or any(q in self.queues for q in queues)

    @property
    def has_slots(self) -> bool:
        """Whether any concurrency limit exists (else nothing is held to renew or release)."""
        limits = (*self.queues.values(), *self.types.values())
        return any(f.concurrency is not None for f in limits)

    def of_queue(self, name: str) -> tuple[Limit, ...]:
        """The counters every task of queue ``name`` must pass."""
        found: list[Limit] = []
        queue = self.queues.get(name)
        if queue is not None:
            if queue.rate is not None:
                found.append(Limit(f"rate:q:{name}", rate=queue.rate))
            if queue.concurrency is not None:
                found.append(Limit(f"slots:q:{name}", concurrency=queue.concurrency))
        return tuple(found)

    def known_without_reading(self, queues: Sequence[str]) -> tuple[Limit, ...] | None:
        """The limits of every task popped from ``queues`` when nothing but its queue decides
        them (one queue, no type limit), so the tasks need not be read first; else None."""
        if self.types or len(queues) != 1:
            return None
        return self.of_queue(queues[0])

    @property
    def payload_keys(self) -> frozenset[str]:
        """The payload fields that name a concurrency key: all a claim must read of payloads."""
        return frozenset(f.concurrency_key for f in self.types.values() if f.concurrency_key)

    def limits_of(self, queue: str, task_type: str) -> tuple[Limit, ...] | None:
        """The counters a task of ``task_type`` in ``queue`` must pass, or None when its
        payload decides them (a concurrency key)."""
        kind = self.types.get(task_type)
        if kind is not None and kind.concurrency_key is not None:
            return None
        return self.limits_for(_Unread(task_type, queue))

    def limits_for(self, task: Limited) -> tuple[Limit, ...]:
        """The counters ``task`` must pass to start, queue's first."""
        known = self._known.get((task.queue, task.type))
        if known is not None:
            return known
        found = list(self.of_queue(task.queue))
        kind = self.types.get(task.type)
        if kind is not None:
            if kind.rate is not None:
                found.append(Limit(f"rate:t:{task.type}", rate=kind.rate))
            if kind.concurrency is not None:
                name = f"slots:t:{task.type}"
                if kind.concurrency_key is not None:
                    value = key_value(task.payload.get(kind.concurrency_key))
                    name = f"slots:k:{task.type}:{kind.concurrency_key}={value}"
                found.append(Limit(name, concurrency=kind.concurrency))
        if kind is None or kind.concurrency_key is None:
            self._known[task.queue, task.type] = tuple(found)
        return tuple(found)

    def holds_slots(self, task: Limited) -> bool:
        """Whether a claimed ``task`` holds concurrency slots (to renew, then release)."""
        return any(limit.concurrency is not None for limit in self.limits_for(task))


def parse_queue_limits(text: str) -> dict[str, FlowLimits]:
    """``"mail=rate:10/s,concurrency:3;exports=concurrency:1"`` → limits per queue (the syntax of
    TASKFLOW_QUEUE_LIMITS); ValueError saying what is wrong."""
    found: dict[str, FlowLimits] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        queue, equals, items = (x.strip() for x in part.partition("="))
        if not equals or not queue or not items:
            raise ValueError(f"expected queue=rate:N/s,concurrency:N, got {part!r}")
        problem = queue_name_problem(queue)
        if problem:
            raise ValueError(f"queue {queue!r}: {problem}")
        if queue in found:
            raise ValueError(f"queue {queue!r} is named twice; it must be named once")
        options: dict[str, str] = {}
        for item in (i.strip() for i in items.split(",")):
            option, colon, value = (x.strip() for x in item.partition(":"))
            if not colon or option not in ("rate", "concurrency") or option in options:
                raise ValueError(f"queue {queue}: expected rate:N/s or concurrency:N, got {item!r}")
            options[option] = value
        try:
            rate = parse_rate(options["rate"]) if "rate" in options else None
            slots = options.get("concurrency")
            concurrency = None
            if slots is not None:
                concurrency = check_concurrency(int(slots) if slots.isdigit() else slots)
        except ValueError as exc:
            raise ValueError(f"queue {queue}: {exc}") from None
        found[queue] = FlowLimits(rate=rate, concurrency=concurrency)
    return found


def key_value(value: object) -> str:
    """A payload field's value as part of a slot set's name; a missing field is ``null``."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        text = str(int(value))  # 7.0 and 7 are one customer, as JSON sees them
    else:
        text = repr(value)
    if len(text) > MAX_KEY_VALUE_CHARS:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def throttle_wait(admission: Admission, task_id: UUID, *, recheck: float, rand: float) -> float:
    """Seconds a throttled task waits before it is looked at again: its rate wait, or when it
    waits for a slot a recheck; spread by ``rand`` (0 ≤ rand < 1) so a herd comes back apart."""
    base = admission.rate_waits.get(task_id, 0.0)
    if task_id in admission.busy:
        base = max(base, recheck)
    return base + recheck * rand
