"""Per-tenant quotas: tasks per second and unfinished tasks (docs/security.md, "Quotas";
decision 37).

Pure values, the syntax of TASKFLOW_TENANT_QUOTAS, and what a refusal says. Counting is a
`QuotaCounter`'s (one for every API process, on Redis); `QuotaService` decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from taskflow.domain.errors import QuotaExceeded
from taskflow.domain.flow import MAX_RATE_COUNT, Rate, parse_rate
from taskflow.domain.keys import tenant_problem

#: The entry of every tenant that has none of its own.
ANY_TENANT: Final = "*"
#: An entry that lifts the ``*`` quota from one tenant.
UNLIMITED: Final = "unlimited"
MAX_UNFINISHED: Final = 100_000_000
MAX_BURST: Final = MAX_RATE_COUNT
#: How long a count of a tenant's unfinished tasks is trusted before the store is asked again.
#: Tasks that finish meanwhile are not subtracted, so this is how long a refusal may outlast
#: the tasks that caused it; also the Retry-After of that refusal.
RECOUNT_SECONDS: Final = 1.0
_OPTIONS: Final = ("rate", "burst", "unfinished")


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """One tenant's limits; None: no such limit. ``burst``: how many tasks may come at once
    (a batch counts its size), one second of ``rate`` unless given."""

    rate: Rate | None = None
    burst: int = 0
    unfinished: int | None = None

    @property
    def largest_batch(self) -> int:
        """The most tasks one submission may hold and still pass some day."""
        sizes = [self.burst if self.rate is not None else MAX_BURST, MAX_UNFINISHED]
        if self.unfinished is not None:
            sizes.append(self.unfinished)
        return min(sizes)

    def __str__(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"rate:{self.rate},burst:{self.burst}")
        if self.unfinished is not None:
            parts.append(f"unfinished:{self.unfinished}")
        return ",".join(parts)


def one_second_of(rate: Rate) -> int:
    """The default burst: a second's worth of ``rate``, at least one task."""
    return max(1, math.ceil(rate.count / rate.per_seconds))


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Every tenant's quota: its own entry, else the ``*`` one (``others``), else none."""

    tenants: Mapping[str, Quota | None] = field(default_factory=dict)
    others: Quota | None = None

    def of(self, tenant: str) -> Quota | None:
        return self.tenants.get(tenant, self.others)

    def __bool__(self) -> bool:
        return self.others is not None or any(q is not None for q in self.tenants.values())


def parse_tenant_quotas(text: str) -> QuotaPolicy:
    """``"acme=rate:100/s,unfinished:10000;*=rate:50/s"`` → the policy (the syntax of
    TASKFLOW_TENANT_QUOTAS); ValueError saying what is wrong."""
    found: dict[str, Quota | None] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        tenant, equals, items = (x.strip() for x in part.partition("="))
        if not equals or not tenant or not items:
            raise ValueError(f"expected tenant=rate:N/s,unfinished:N, got {part!r}")
        problem = None if tenant == ANY_TENANT else tenant_problem(tenant)
        if problem:
            raise ValueError(f"tenant {tenant!r}: {problem}")
        if tenant in found:
            raise ValueError(f"tenant {tenant!r} is named twice; it must be named once")
        try:
            found[tenant] = None if items == UNLIMITED else _quota(items)
        except ValueError as exc:
            raise ValueError(f"tenant {tenant}: {exc}") from None
    others = found.pop(ANY_TENANT, None)
    return QuotaPolicy(found, others)


def _quota(items: str) -> Quota:
    options: dict[str, str] = {}
    for item in (i.strip() for i in items.split(",")):
        option, colon, value = (x.strip() for x in item.partition(":"))
        if not colon or option not in _OPTIONS or option in options:
            raise ValueError(
                f"expected rate:N/s, burst:N, unfinished:N or {UNLIMITED!r}, got {item!r}"
            )
        options[option] = value
    rate = parse_rate(options["rate"]) if "rate" in options else None
    burst = 0
    if "burst" in options:
        if rate is None:
            raise ValueError("burst needs a rate (it is how many tasks may come at once)")
        burst = _whole("burst", options["burst"], MAX_BURST)
    elif rate is not None:
        burst = one_second_of(rate)
    unfinished = None
    if "unfinished" in options:
        unfinished = _whole("unfinished", options["unfinished"], MAX_UNFINISHED)
    return Quota(rate=rate, burst=burst, unfinished=unfinished)


def _whole(option: str, value: str, largest: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= largest:
        raise ValueError(f"{option} must be a whole number between 1 and {largest}, got {value!r}")
    return int(value)


# --- what a counter answers, and what a refusal says ---


@dataclass(frozen=True, slots=True)
class Seed:
    """A count of a tenant's unfinished tasks read from the store, for a counter that keeps
    none: ``token`` is the one the counter gave when it said so (`Counted.recount`)."""

    count: int
    token: int


@dataclass(frozen=True, slots=True)
class Counted:
    """What a `QuotaCounter` said of one submission. Admitted when nothing below refused it
    and no recount is asked for; otherwise it took nothing."""

    rate_wait: float = 0.0  # seconds before the rate would let it pass; 0: the rate lets it
    full: bool = False  # it would take the unfinished tasks over the quota
    recount: int | None = None  # no count is kept: read one and take again with this token

    @property
    def admitted(self) -> bool:
        return self.rate_wait <= 0 and not self.full and self.recount is None


ADMITTED: Final = Counted()


def retry_after(seconds: float) -> int:
    """Whole seconds for Retry-After: rounded up, at least one."""
    return max(1, math.ceil(seconds))


def refusal(tenant: str, quota: Quota, count: int, counted: Counted) -> QuotaExceeded:
    """The error a refused submission of ``count`` tasks is answered with (a 429)."""
    wait = counted.rate_wait
    reasons = []
    if counted.rate_wait > 0 and quota.rate is not None:
        reasons.append(f"{quota.rate} (burst {quota.burst})")
    if counted.full:
        wait = max(wait, RECOUNT_SECONDS)
        reasons.append(f"at most {quota.unfinished} unfinished tasks")
    seconds = retry_after(wait)
    tasks = "1 task" if count == 1 else f"{count} tasks"
    return QuotaExceeded(
        f"tenant {tenant!r} is over its quota of {' and '.join(reasons)}: {tasks} refused, "
        f"nothing stored; try again in {seconds} s",
        retry_after=seconds,
    )


def batch_problem(tenant: str, quota: Quota, count: int) -> str | None:
    """Why a submission of ``count`` tasks can never pass ``quota``, or None."""
    largest = quota.largest_batch
    if count <= largest:
        return None
    return (
        f"a batch of {count} tasks can never pass tenant {tenant!r}'s quota ({quota}); "
        f"send at most {largest} at once"
    )
