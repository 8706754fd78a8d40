"""The in-process `QuotaCounter`: for `taskflow dev` (one process) and unit tests.

The same rules as the Lua script of `RedisQuotaCounter`, which the contract suite holds both
to: GCRA for the rate, a count of unfinished tasks kept RECOUNT_SECONDS, set only from a seed
carrying the current recount token.
"""

from __future__ import annotations

from taskflow.domain.ports import Clock
from taskflow.domain.quotas import ADMITTED, RECOUNT_SECONDS, Counted, Quota, Seed

_US = 1_000_000


class InMemoryQuotaCounter:
    def __init__(self, clock: Clock, *, recount_seconds: float = RECOUNT_SECONDS) -> None:
        self._clock = clock
        self._kept_us = recount_seconds * _US
        self._tat: dict[str, float] = {}  # tenant → theoretical arrival (epoch µs)
        self._kept: dict[str, tuple[int, float]] = {}  # tenant → (count, kept until, epoch µs)
        self._recounts: dict[str, int] = {}  # tenant → times its count was set from a seed

    async def take(
        self, tenant: str, count: int, quota: Quota, *, seed: Seed | None = None
    ) -> Counted:
        now = float(round(self._clock.now().timestamp() * _US))
        tat, wait = now, 0.0
        if quota.rate is not None:
            interval = quota.rate.interval * _US
            tat = max(self._tat.get(tenant, now), now)
            over = tat + (count - quota.burst) * interval - now
            wait = over if over >= 1 else 0.0
        kept, full = None, False
        if quota.unfinished is not None:
            kept = self._kept.get(tenant)
            if kept is None or kept[1] <= now:
                if wait > 0:
                    return Counted(wait / _US)
                token = self._recounts.get(tenant, 0)
                if seed is None or seed.token != token:
                    return Counted(recount=token)
                kept = self._kept[tenant] = (seed.count, now + self._kept_us)
                self._recounts[tenant] = token + 1
            full = kept[0] + count > quota.unfinished
        if wait > 0 or full:
            return Counted(wait / _US, full)
        if quota.rate is not None:
            self._tat[tenant] = tat + count * quota.rate.interval * _US
        if kept is not None:
            self._kept[tenant] = (kept[0] + count, kept[1])
        return ADMITTED
