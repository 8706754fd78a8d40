"""The Redis dispatch queue: task ids in sorted sets, ordered by priority then run_at.

Per queue Q, under the key prefix P:

- ``P:q:Q:ready`` holds due task ids, scored ``(MAX_PRIORITY - priority) * 10**13 + run_at_ms``
  so that ZPOPMIN yields the highest priority first, then the earliest run_at, then the lowest id
  (ties in score come out in member order, and ids are canonical UUID strings);
- ``P:q:Q:delayed`` holds ``"<priority>:<task id>"`` scored ``run_at_ms`` until it is due.

PostgreSQL is the truth; these sets only carry ids and may lose them. A due member is moved
from ``delayed`` to ``ready`` by the pop script itself, so no separate scheduler is needed.

The adapter expects a client built without ``decode_responses`` (see `connect`): members are
read as bytes so that a malformed one can be dropped instead of failing the whole reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from taskflow.adapters.batching import Coalescer
from taskflow.adapters.clock import SystemClock
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.limits import MAX_PRIORITY, priority_problem
from taskflow.domain.ports import Clock, Dispatch

logger = logging.getLogger("taskflow.queue")

PRIORITY_SPAN = 10**13  # > any epoch-ms run_at before the year 2286, so priority dominates
PROMOTE_BATCH = 1000  # delayed members moved per queue per pop: keeps each script call short
MAX_BLOCK = 1.0  # a blocked pop looks again this often, for ids that became due meanwhile
MIN_BLOCK = 0.001  # BZMPOP treats 0 as "for ever"
LOGGED_CHARS = 100
CONNECT_TIMEOUT = 5.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder().encode
_MS = timedelta(milliseconds=1)
# RuntimeError: with uvloop, a connection Redis dropped mid-handshake surfaces as "unable to
# perform operation on <TCPTransport closed=True>" rather than as a ConnectionError.
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    RuntimeError,
)

# KEYS: the ready and delayed set of each queue. ARGV: per queue, one JSON array of
# [id, priority, run_at ms, ready score or ""] (one string decoded by cjson costs far less to
# send than four arguments per id). A due id goes to ``ready`` and leaves ``delayed`` so it is
# not delivered twice; a future one is not delayed while the same id is ready, since the ready
# entry is earlier. LT lets an earlier run_at win. Due ids are added and removed in bulk,
# at most CHUNK values per command (Lua's unpack has a limit).
_PUSH = """
local CHUNK = 1000
local function bulk(command, key, values, lt)
  for s = 1, #values, CHUNK do
    local last = math.min(s + CHUNK - 1, #values)
    if lt then
      redis.call(command, key, 'LT', unpack(values, s, last))
    else
      redis.call(command, key, unpack(values, s, last))
    end
  end
end
for q = 1, #ARGV do
  local ready, delayed = KEYS[2 * q - 1], KEYS[2 * q]
  local adds, gone = {}, {}
  for _, item in ipairs(cjson.decode(ARGV[q])) do
    local id, delayed_member = item[1], item[2] .. ':' .. item[1]
    if item[4] ~= '' then
      adds[#adds + 1] = item[4]
      adds[#adds + 1] = id
      gone[#gone + 1] = delayed_member
    elseif not redis.call('ZSCORE', ready, id) then
      redis.call('ZADD', delayed, 'LT', item[3], delayed_member)
    end
  end
  bulk('ZADD', ready, adds, true)
  bulk('ZREM', delayed, gone, false)
end
"""

# KEYS as for _PUSH. ARGV: now (epoch ms), limit, PROMOTE_BATCH, PRIORITY_SPAN, MAX_PRIORITY.
# Returns {popped ids, ms until the next delayed member is due or -1, malformed members}.
# The wait is only computed when nothing was popped: only a caller about to block needs it.
_POP = """
local now, limit, batch, span = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local top = tonumber(ARGV[5])
local malformed = {}
for i = 1, #KEYS, 2 do
  local due = redis.call('ZRANGE', KEYS[i + 1], '-inf', now, 'BYSCORE', 'LIMIT', 0, batch,
    'WITHSCORES')
  if #due > 0 then
    local ready, gone = {}, {}
    for j = 1, #due, 2 do
      gone[#gone + 1] = due[j]
      local priority, id = string.match(due[j], '^(%d+):(.+)$')
      if priority then
        local score = (top - tonumber(priority)) * span + tonumber(due[j + 1])
        ready[#ready + 1] = string.format('%.0f', score)
        ready[#ready + 1] = id
      else
        malformed[#malformed + 1] = string.sub(due[j], 1, 100)
      end
    end
    if #ready > 0 then
      redis.call('ZADD', KEYS[i], 'LT', unpack(ready))
    end
    redis.call('ZREM', KEYS[i + 1], unpack(gone))
  end
end
local ids = {}
for i = 1, #KEYS, 2 do
  if #ids >= limit then break end
  local popped = redis.call('ZPOPMIN', KEYS[i], limit - #ids)
  for j = 1, #popped, 2 do ids[#ids + 1] = popped[j] end
end
local wait = -1
if #ids == 0 then
  for i = 2, #KEYS, 2 do
    local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if first[2] then
      local ms = math.max(0, tonumber(first[2]) - now)
      if wait < 0 or ms < wait then wait = ms end
    end
  end
end
return {ids, wait, malformed}
"""


def connect(url: str, *, socket_timeout: float | None = 5.0) -> redis.asyncio.Redis:
    """A client for `RedisTaskQueue`: bounded timeouts, one quick retry on a dropped connection.

    Timeouts are not retried: a pop whose reply was lost may have popped ids already, and
    running it again would only lose more.
    """
    retry = Retry(
        ExponentialWithJitterBackoff(base=0.01, cap=0.1),
        retries=1,
        supported_errors=(redis.exceptions.ConnectionError,),
    )
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=retry,
    )


class RedisTaskQueue:
    """`TaskQueue` on Redis ≥ 7. Due ids come out by priority, then run_at (to the millisecond),
    then task id. Pushing an id that is queued already changes nothing unless its run_at is
    earlier. Any connection failure or timeout is raised as `QueueUnavailable`.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "taskflow",
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock: Clock = clock or SystemClock()
        self._marker = f"{prefix}:intact"
        self._push_script = client.register_script(_PUSH)
        self._pushes: Coalescer[Sequence[Dispatch]] = Coalescer(self._push_many)
        self._pop_script = client.register_script(_POP)
        self._socket_timeout: float | None = client.connection_pool.connection_kwargs.get(
            "socket_timeout"
        )

    async def push(self, dispatches: Sequence[Dispatch]) -> None:
        if not dispatches:
            return
        for d in dispatches:
            problem = priority_problem(d.priority)
            if problem:
                raise ValueError(f"task {d.task_id}: {problem}, got {d.priority}")
        # Concurrent pushes (an API answering many submissions) share one script call.
        await self._pushes.submit(dispatches)

    async def _push_many(self, batches: Sequence[Sequence[Dispatch]]) -> list[BaseException | None]:
        keys, args = self._push_arguments([d for batch in batches for d in batch])
        with mapped_errors():
            await self._push_script(keys=keys, args=args)
        return [None] * len(batches)

    async def pop(self, queues: Sequence[str], *, limit: int, timeout: float) -> list[UUID]:
        if not queues or limit < 1:
            raise ValueError("pop needs at least one queue and a limit of at least 1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with mapped_errors():
            while True:
                ids, wait_ms = await self._take(queues, limit)
                remaining = deadline - loop.time()
                if ids or remaining <= 0:
                    return ids
                block = self._block_seconds(remaining, wait_ms)
                if block > 0:
                    ids = await self._block_pop(queues, limit, block)
                    if ids:
                        return ids

    async def absent(self, dispatches: Sequence[Dispatch]) -> list[Dispatch]:
        if not dispatches:
            return []
        by_queue: dict[str, list[int]] = {}  # queue -> positions in dispatches
        for position, d in enumerate(dispatches):
            by_queue.setdefault(d.queue, []).append(position)
        # Two ZMSCOREs per queue (the ready and the delayed set) in one round trip: a page of
        # thousands of ids costs a handful of commands, not two per id.
        pipe = self._client.pipeline(transaction=False)
        for queue, positions in by_queue.items():
            ready, delayed = self._keys(queue)
            group = [dispatches[p] for p in positions]
            pipe.zmscore(ready, [str(d.task_id) for d in group])
            pipe.zmscore(delayed, [f"{d.priority}:{d.task_id}" for d in group])
        with mapped_errors():
            replies = await pipe.execute()
        missing: list[int] = []
        for index, positions in enumerate(by_queue.values()):
            scores = zip(replies[2 * index], replies[2 * index + 1], strict=True)
            missing += [
                p for p, pair in zip(positions, scores, strict=True) if pair == (None, None)
            ]
        return [dispatches[p] for p in sorted(missing)]

    async def intact(self) -> bool:
        with mapped_errors():
            return bool(await self._client.exists(self._marker))

    async def mark_intact(self) -> None:
        # A restart without persistence or a FLUSHALL takes this key with the queued ids,
        # which is how the reconciler learns it must re-push everything the store holds.
        with mapped_errors():
            await self._client.set(self._marker, self._clock.now().isoformat())

    async def warnings(self) -> list[str]:
        try:
            with mapped_errors():
                config = await self._client.config_get("maxmemory-policy")
        except (QueueUnavailable, redis.exceptions.ResponseError):
            return []  # CONFIG may be disabled on managed Redis; nothing to say then
        policy = next((_text(value) for value in config.values() if value), "")
        if policy.startswith("allkeys"):
            return [
                f"Redis maxmemory-policy is {policy}: it may evict queued task ids under memory "
                "pressure (they are re-dispatched from the store, but late); use noeviction"
            ]
        return []

    async def ping(self) -> None:
        with mapped_errors():
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    def _keys(self, queue: str) -> list[str]:
        return [f"{self._prefix}:q:{queue}:ready", f"{self._prefix}:q:{queue}:delayed"]

    def _push_arguments(self, dispatches: Sequence[Dispatch]) -> tuple[list[str], list[Any]]:
        now = self._clock.now()
        by_queue: defaultdict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        for d in dispatches:
            run_at = _ceil_ms(d.run_at)
            score = str(_ready_score(d.priority, run_at)) if d.run_at <= now else ""
            by_queue[d.queue].append((str(d.task_id), str(d.priority), str(run_at), score))
        keys: list[str] = []
        args: list[Any] = []
        for queue, items in by_queue.items():
            keys += self._keys(queue)
            args.append(_encode(items))
        return keys, args

    async def _take(self, queues: Sequence[str], limit: int) -> tuple[list[UUID], int]:
        keys = [key for queue in queues for key in self._keys(queue)]
        now = _floor_ms(self._clock.now())
        raw, wait_ms, malformed = await self._pop_script(
            keys=keys, args=[now, limit, PROMOTE_BATCH, PRIORITY_SPAN, MAX_PRIORITY]
        )
        for member in malformed:
            logger.warning("dropped a malformed delayed member: %r", member)
        return _task_ids(raw), int(wait_ms)

    @staticmethod
    def _block_seconds(remaining: float, wait_ms: int) -> float:
        block = min(remaining, MAX_BLOCK)
        if wait_ms >= 0:
            block = min(block, wait_ms / 1000)
        if block <= 0:
            return 0.0  # a delayed id is due now: promote it at once instead of blocking
        return max(MIN_BLOCK, math.ceil(block * 1000) / 1000)

    async def _block_pop(self, queues: Sequence[str], limit: int, block: float) -> list[UUID]:
        ready = [f"{self._prefix}:q:{queue}:ready" for queue in queues]
        # The client's socket timeout would cut a healthy block short (Redis may even answer
        # up to 1/hz late), so this one read gets block + socket timeout instead. Any read
        # error, cancellation included, makes redis-py drop the connection, so a late reply
        # can never be read by someone else.
        pool: Any = self._client.connection_pool  # get_connection is untyped in redis-py
        conn = await pool.get_connection()
        try:
            await conn.send_command("BZMPOP", block, len(ready), *ready, "MIN", "COUNT", limit)
            budget = None if self._socket_timeout is None else block + self._socket_timeout
            async with asyncio.timeout(budget):
                reply: Any = await conn.read_response(timeout=math.inf)
        finally:
            await pool.release(conn)
        if not reply:
            return []
        _key, pairs = reply  # [key, [[member, score], ...]]
        return _task_ids([pair[0] for pair in pairs])


def _task_ids(members: Sequence[bytes | str]) -> list[UUID]:
    ids = []
    for member in members:
        task_id = task_id_of(member)
        if task_id is None:
            # Someone else wrote into our keys; the id, if any, is still in the store.
            text = member[:LOGGED_CHARS]
            logger.warning("dropped a queue member that is not a task id: %r", text)
        else:
            ids.append(task_id)
    return ids


def task_id_of(member: bytes | str) -> UUID | None:
    if len(member) != 36:  # the length of str(UUID); spares decoding huge garbage
        return None
    try:
        text = member.decode("ascii") if isinstance(member, bytes) else member
        return UUID(text)
    except ValueError:  # UnicodeDecodeError is one too
        return None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _ready_score(priority: int, run_at_ms: int) -> int:
    return (MAX_PRIORITY - priority) * PRIORITY_SPAN + run_at_ms


def _floor_ms(at: datetime) -> int:
    return (at - _EPOCH) // _MS


def _ceil_ms(at: datetime) -> int:
    # Rounding run_at up and now down keeps a task from ever being popped before it is due.
    return -((_EPOCH - at) // _MS)


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise QueueUnavailable(f"redis is unreachable: {exc}") from exc
