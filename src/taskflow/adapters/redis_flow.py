"""`FlowLimiter` on Redis: one Lua script admits a whole claim's worth of tasks (decision 21).

Under the key prefix P:

- ``P:flow:rate:…`` holds a rate limit's theoretical arrival time (GCRA), in microseconds of
  Redis's own clock, expiring when it is in the past (then the bucket is full again);
- ``P:flow:slots:…`` is a sorted set of the task ids holding a concurrency slot, scored by when
  the slot lapses (their lease's end); lapsed members are dropped before counting;
- ``P:flow:held:<task id>`` lists the slot sets a task holds, so that a renewal or a release
  needs only its id; it lapses with the slots.

Every time is Redis's ``TIME``: all workers count on one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
import redis.asyncio

from taskflow.adapters.redis import mapped_errors
from taskflow.domain.flow import Admission, Limit

_encode = msgspec.json.Encoder().encode
_US = 1_000_000

# Microsecond times go to Redis through us(): Lua would write them with 14 digits, to 100 us.
# Shared with the quota counter (redis_quotas.py).
NOW_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function us(value) return string.format('%.0f', value) end
local function ms(value) return math.max(1, math.ceil(value / 1000)) end
"""

# KEYS: the limits' keys (in ARGV[1]'s order), then the ``held`` key of each task that asks
# for a slot. ARGV[1]: JSON [["r", interval us, burst] | ["c", slots]]; ARGV[2]: JSON [[task id,
# [limit positions], n if its held key is the nth of those keys, else 0]]; ARGV[3]: the lease
# in us. Tasks are taken in order; one that fails a limit takes nothing, and each refused one
# queues behind the others refused on the same rate.
# Returns {{id, rate wait us, 1 if it waits for a slot}...} for the refused only: every other
# task was admitted, and a claim that throttles nothing has nothing to read back.
ADMIT = (
    NOW_LUA
    + """
local limits, tasks, lease = cjson.decode(ARGV[1]), cjson.decode(ARGV[2]), tonumber(ARGV[3])
local tat, holders, refused, used = {}, {}, {}, {}
for i, limit in ipairs(limits) do
  refused[i] = 0
  if limit[1] == 'r' then
    tat[i] = math.max(tonumber(redis.call('GET', KEYS[i]) or 0), now)
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', us(now))
    holders[i] = redis.call('ZCARD', KEYS[i])
  end
end
local throttled = {}
for j, task in ipairs(tasks) do
  local id, uses = task[1], task[2]
  local wait, full, failed = 0, false, {}
  for _, i in ipairs(uses) do
    local limit = limits[i]
    if limit[1] == 'r' then
      local over = tat[i] - now - (limit[3] - 1) * limit[2]
      if over >= 1 then
        wait = math.max(wait, over + refused[i] * limit[2])
        failed[#failed + 1] = i
      end
    elseif holders[i] >= limit[2] or redis.call('ZSCORE', KEYS[i], id) then
      full = true
    end
  end
  if wait > 0 or full then
    for _, i in ipairs(failed) do refused[i] = refused[i] + 1 end
    throttled[#throttled + 1] = {id, us(wait), full and 1 or 0}
  else
    local held = {}
    for _, i in ipairs(uses) do
      if limits[i][1] == 'r' then
        tat[i] = tat[i] + limits[i][2]
        used[i] = true
      else
        redis.call('ZADD', KEYS[i], us(now + lease), id)
        holders[i] = holders[i] + 1
        held[#held + 1] = KEYS[i]
      end
    end
    if #held > 0 then
      redis.call('SET', KEYS[#limits + task[3]], cjson.encode(held), 'PX', ms(lease))
    end
  end
end
for i in pairs(used) do
  redis.call('SET', KEYS[i], us(tat[i]), 'PX', ms(tat[i] - now))
end
return throttled
"""
)

# KEYS: the tasks' ``held`` keys; ARGV[1]: the lease in us, then the task ids in KEYS' order.
# A slot that lapsed already stays free: someone else may hold it now.
RENEW = (
    NOW_LUA
    + """
local lease = tonumber(ARGV[1])
for j = 1, #KEYS do
  local held = redis.call('GET', KEYS[j])
  if held then
    for _, key in ipairs(cjson.decode(held)) do
      local until_us = redis.call('ZSCORE', key, ARGV[j + 1])
      if until_us and tonumber(until_us) > now then
        redis.call('ZADD', key, 'XX', us(now + lease), ARGV[j + 1])
      end
    end
    redis.call('PEXPIRE', KEYS[j], ms(lease))
  end
end
"""
)

# KEYS: the tasks' ``held`` keys; ARGV: the task ids in KEYS' order.
RELEASE = """
for j = 1, #KEYS do
  local held = redis.call('GET', KEYS[j])
  if held then
    for _, key in ipairs(cjson.decode(held)) do redis.call('ZREM', key, ARGV[j]) end
    redis.call('DEL', KEYS[j])
  end
end
"""


# KEYS: slot sets, then one ``held`` key per holder; ARGV[1]: JSON [[task id, us its lease has
# left, [slot set positions]]]. A holder's slot lasts as long as its lease, even past the limit.
RESTORE = (
    NOW_LUA
    + """
local holders = cjson.decode(ARGV[1])
local sets = #KEYS - #holders
for j, holder in ipairs(holders) do
  local id, left, held = holder[1], tonumber(holder[2]), {}
  for _, i in ipairs(holder[3]) do
    redis.call('ZADD', KEYS[i], 'GT', us(now + left), id)
    held[#held + 1] = KEYS[i]
  end
  redis.call('SET', KEYS[sets + j], cjson.encode(held), 'PX', ms(left))
end
"""
)


class RedisFlowLimiter:
    """`FlowLimiter` on Redis ≥ 7 (one server, as the queue). Connection failures are raised as
    `QueueUnavailable`."""

    def __init__(
        self, client: redis.asyncio.Redis, *, prefix: str = "taskflow", owned: bool = False
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:flow:"
        self._owned = owned  # a client of its own (the lease keeper's thread): close it too
        self._admit = client.register_script(ADMIT)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._restore = client.register_script(RESTORE)

    async def admit(
        self, requests: Sequence[tuple[UUID, Sequence[Limit]]], *, lease_seconds: float
    ) -> Admission:
        if not requests:
            return Admission(frozenset())
        positions: dict[str, int] = {}
        limits: list[list[Any]] = []
        tasks: list[list[Any]] = []
        holders: list[UUID] = []  # the tasks asking for a slot: only they need a held key
        for task_id, wanted in requests:
            uses = []
            slots = False
            for limit in wanted:
                if limit.name not in positions:
                    positions[limit.name] = len(limits) + 1
                    limits.append(_described(limit))
                uses.append(positions[limit.name])
                slots = slots or limit.concurrency is not None
            if slots:
                holders.append(task_id)
            tasks.append([str(task_id), uses, len(holders) if slots else 0])
        keys = [self._prefix + name for name in positions]
        keys += [self._held(task_id) for task_id in holders]
        args: list[bytes | int] = [_encode(limits), _encode(tasks), round(lease_seconds * _US)]
        with mapped_errors():
            throttled = await self._admit(keys=keys, args=args)
        refused = {UUID(_text(i)): (int(wait), int(full)) for i, wait, full in throttled}
        return Admission(
            frozenset(task_id for task_id, _ in requests if task_id not in refused),
            {i: wait / _US for i, (wait, _) in refused.items() if wait > 0},
            frozenset(i for i, (_, full) in refused.items() if full),
        )

    async def renew(self, task_ids: Sequence[UUID], *, lease_seconds: float) -> None:
        if not task_ids:
            return
        keys = [self._held(task_id) for task_id in task_ids]
        args: list[str | int] = [round(lease_seconds * _US), *map(str, task_ids)]
        with mapped_errors():
            await self._renew(keys=keys, args=args)

    async def release(self, task_ids: Sequence[UUID]) -> None:
        if not task_ids:
            return
        keys = [self._held(task_id) for task_id in task_ids]
        with mapped_errors():
            await self._release(keys=keys, args=[str(task_id) for task_id in task_ids])

    async def restore(self, holders: Sequence[tuple[UUID, Sequence[Limit], float]]) -> None:
        positions: dict[str, int] = {}
        described: list[list[Any]] = []
        for task_id, limits, left in holders:
            names = [limit.name for limit in limits if limit.concurrency is not None]
            if not names or left <= 0:
                continue
            uses = [positions.setdefault(name, len(positions) + 1) for name in names]
            described.append([str(task_id), round(left * _US), uses])
        if not described:
            return
        keys = [self._prefix + name for name in positions]
        keys += [self._held(UUID(holder[0])) for holder in described]
        with mapped_errors():
            await self._restore(keys=keys, args=[_encode(described)])

    async def close(self) -> None:
        if self._owned:
            await self._client.aclose()

    def _held(self, task_id: UUID) -> str:
        return f"{self._prefix}held:{task_id}"


def _described(limit: Limit) -> list[Any]:
    if limit.rate is not None:
        return ["r", limit.rate.interval * _US, limit.rate.burst]
    return ["c", limit.concurrency]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
