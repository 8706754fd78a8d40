"""`QuotaCounter` on Redis: one Lua script checks and takes a submission from a tenant's
quotas, for every API process at once (decision 37).

Under the key prefix P, per tenant T:

- ``P:quota:rate:T`` holds the rate's theoretical arrival time (GCRA, as the flow limiter's),
  in microseconds of Redis's own clock, expiring when the bucket is full again;
- ``P:quota:unfinished:T`` holds T's unfinished tasks as last read from the store, plus those
  admitted since; it lives RECOUNT_SECONDS, then a process reads the store again;
- ``P:quota:recounts:T`` counts the times the count was set from the store: a process that
  found no count sets one only if no other did meanwhile (its token is still the current one),
  so a slow read never overwrites a newer count's successor.
"""

from __future__ import annotations

import redis.asyncio

from taskflow.adapters.redis import mapped_errors
from taskflow.adapters.redis_flow import NOW_LUA
from taskflow.domain.quotas import ADMITTED, RECOUNT_SECONDS, Counted, Quota, Seed

_US = 1_000_000
#: How long the recount token outlives the last recount: a day without submissions, then
#: tokens start again from 0 (a seed carrying an older one is merely read again).
_TOKEN_MS = 86_400_000

# KEYS: T's rate, unfinished and recounts keys. ARGV: the tasks asked for, the rate's interval
# in us (0: no rate), its burst, the unfinished limit (0: none), the ms a count is kept, and the
# seed's count and token ('' and '': no seed).
# Returns {rate wait us, 1 if the unfinished quota refuses, the token to recount with or -1}:
# {0, 0, -1} when admitted. Nothing is taken unless admitted.
TAKE = (
    NOW_LUA
    + """
local n, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local tat, wait = now, 0
if interval > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
  local over = tat + (n - burst) * interval - now
  if over >= 1 then wait = over end
end
local kept, full = nil, 0
if limit > 0 then
  kept = redis.call('GET', KEYS[2])
  if not kept then
    if wait > 0 then return {us(wait), 0, -1} end
    local token = tonumber(redis.call('GET', KEYS[3]) or 0)
    if ARGV[6] == '' or tonumber(ARGV[7]) ~= token then return {0, 0, token} end
    kept = ARGV[6]
    redis.call('SET', KEYS[2], kept, 'PX', ARGV[5])
    redis.call('SET', KEYS[3], token + 1, 'PX', ARGV[8])
  end
  if tonumber(kept) + n > limit then full = 1 end
end
if wait > 0 or full == 1 then return {us(wait), full, -1} end
if interval > 0 then
  tat = tat + n * interval
  redis.call('SET', KEYS[1], us(tat), 'PX', ms(tat - now))
end
if limit > 0 then redis.call('INCRBY', KEYS[2], n) end
return {0, 0, -1}
"""
)


class RedisQuotaCounter:
    """`QuotaCounter` on Redis ≥ 7 (the queue's server). Connection failures are raised as
    `QueueUnavailable`; ``recount_seconds``: how long a count read from the store is kept."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "taskflow",
        recount_seconds: float = RECOUNT_SECONDS,
    ) -> None:
        self._prefix = f"{prefix}:quota:"
        self._kept_ms = max(1, round(recount_seconds * 1000))
        self._take = client.register_script(TAKE)

    async def take(
        self, tenant: str, count: int, quota: Quota, *, seed: Seed | None = None
    ) -> Counted:
        prefix = self._prefix
        keys = [f"{prefix}rate:{tenant}", f"{prefix}unfinished:{tenant}"]
        keys.append(f"{prefix}recounts:{tenant}")
        args: list[str | int | float] = [
            count,
            0 if quota.rate is None else quota.rate.interval * _US,
            quota.burst,
            quota.unfinished or 0,
            self._kept_ms,
            "" if seed is None else seed.count,
            "" if seed is None else seed.token,
            _TOKEN_MS,
        ]
        with mapped_errors():
            wait, full, token = await self._take(keys=keys, args=args)
        wait, full, token = int(wait), int(full), int(token)
        if not (wait or full) and token < 0:
            return ADMITTED
        return Counted(wait / _US, bool(full), None if token < 0 else token)
