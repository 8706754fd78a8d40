"""The in-process `FlowLimiter`: for `taskflow dev` (one process) and unit tests.

The same rules as the Lua script of `RedisFlowLimiter` (GCRA for rates, slot sets whose
members expire with their lease), which the contract suite holds both to.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from taskflow.domain.flow import Admission, Limit
from taskflow.domain.ports import Clock

_US = 1_000_000


class InMemoryFlowLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}  # rate limit → theoretical arrival (epoch µs)
        self._slots: dict[str, dict[UUID, float]] = {}  # slot set → holder → lapse (epoch µs)
        self._held: dict[UUID, list[str]] = {}  # holder → its slot sets

    def _now(self) -> float:
        # Microseconds, as the Redis limiter counts; a start less than one early is on time.
        return float(round(self._clock.now().timestamp() * _US))

    async def admit(
        self, requests: Sequence[tuple[UUID, Sequence[Limit]]], *, lease_seconds: float
    ) -> Admission:
        now = self._now()
        for slots in self._slots.values():
            for holder in [h for h, expiry in slots.items() if expiry <= now]:
                del slots[holder]
        refused: dict[str, int] = {}
        admitted: set[UUID] = set()
        rate_waits: dict[UUID, float] = {}
        busy: set[UUID] = set()
        for task_id, limits in requests:
            wait, full, failed = self._verdict(task_id, limits, now, refused)
            if wait > 0 or full:
                for name in failed:
                    refused[name] = refused.get(name, 0) + 1
                if wait > 0:
                    rate_waits[task_id] = wait / _US
                if full:
                    busy.add(task_id)
                continue
            admitted.add(task_id)
            self._take(task_id, limits, now, lease_seconds)
        return Admission(frozenset(admitted), rate_waits, frozenset(busy))

    def _verdict(
        self, task_id: UUID, limits: Sequence[Limit], now: float, refused: dict[str, int]
    ) -> tuple[float, bool, list[str]]:
        """(µs the rates make it wait, whether a slot set is full, the rates that refused)."""
        wait, full, failed = 0.0, False, []
        for limit in limits:
            if limit.rate is not None:
                # GCRA: a start is due `interval` after the previous theoretical one, and may
                # come up to burst - 1 intervals early. Refused tasks queue up behind.
                interval = limit.rate.interval * _US
                over = max(self._tat.get(limit.name, now), now) - now
                over -= (limit.rate.burst - 1) * interval
                if over >= 1:
                    wait = max(wait, over + refused.get(limit.name, 0) * interval)
                    failed.append(limit.name)
            elif limit.concurrency is not None:
                slots = self._slots.get(limit.name, {})
                full = full or task_id in slots or len(slots) >= limit.concurrency
        return wait, full, failed

    def _take(self, task_id: UUID, limits: Sequence[Limit], now: float, lease: float) -> None:
        held = []
        for limit in limits:
            if limit.rate is not None:
                self._tat[limit.name] = max(self._tat.get(limit.name, now), now)
                self._tat[limit.name] += limit.rate.interval * _US
            else:
                self._slots.setdefault(limit.name, {})[task_id] = now + lease * _US
                held.append(limit.name)
        if held:
            self._held[task_id] = held

    async def renew(self, task_ids: Sequence[UUID], *, lease_seconds: float) -> None:
        now = self._now()
        for task_id in task_ids:
            for name in self._held.get(task_id, ()):
                slots = self._slots.get(name, {})
                if slots.get(task_id, now) > now:
                    slots[task_id] = now + lease_seconds * _US

    async def release(self, task_ids: Sequence[UUID]) -> None:
        for task_id in task_ids:
            for name in self._held.pop(task_id, ()):
                self._slots.get(name, {}).pop(task_id, None)

    async def restore(self, holders: Sequence[tuple[UUID, Sequence[Limit], float]]) -> None:
        now = self._now()
        for task_id, limits, left in holders:
            names = [limit.name for limit in limits if limit.concurrency is not None]
            for name in names:
                slots = self._slots.setdefault(name, {})
                slots[task_id] = max(slots.get(task_id, now), now + left * _US)
            if names and left > 0:
                self._held[task_id] = names

    async def close(self) -> None:
        return None
