"""The Redis dispatch queue: task ids in sorted sets, ordered by priority then run_at.

Per queue Q, under the key prefix P:

- ``P:q:Q:ready`` holds due task ids, scored ``(MAX_PRIORITY - priority) * 10**13 + run_at_ms``
  so that ZPOPMIN yields the highest priority first, then the earliest run_at, then the lowest id
  (ties in score come out in member order, and ids are canonical UUID strings);
- ``P:q:Q:delayed`` holds ``"<priority>:<task id>"`` scored ``run_at_ms`` until it is due;
- ``P:q:Q:wake`` holds one member, or none: a push of a delayed id due sooner than any other
  puts it there, so that a pop blocked on it learns of the sooner due time (it never holds ids);
- ``P:q:Q:kinds`` maps queued ids to their task type, only in a queue built with
  ``kinds=True`` (a deployment with type limits): the pop hands the type back with the id, so a
  worker need not read the task before it asks the limiter (decision 21);
- ``P:alarm:<random>`` is a pop's own alarm: it blocks on it as well, and rings it itself when
  the earliest delayed id falls due (Redis checks its blocked clients' timeouts only 1/hz apart,
  so a timeout of its own would come back up to 100 ms late). A rung alarm that nobody took
  expires.

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
import uuid
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
from taskflow.adapters.redis_scripts import POP, PUSH, TAKE_KINDS
from taskflow.domain.errors import QueueUnavailable
from taskflow.domain.limits import MAX_PRIORITY, priority_problem
from taskflow.domain.ports import Clock, Dispatch, PoppedIds
from taskflow.domain.redaction import without_passwords

logger = logging.getLogger("taskflow.queue")

PRIORITY_SPAN = 10**13  # > any epoch-ms run_at before the year 2286, so priority dominates
PROMOTE_BATCH = 1000  # delayed members moved per queue per pop: keeps each script call short
# A blocked pop looks again this often. Wake members and alarms tell it all it needs; this
# only bounds what a lost one (a pop cancelled after taking a wake member) costs.
MAX_BLOCK = 1.0
MIN_BLOCK = 0.001  # BZMPOP treats 0 as "for ever"
ALARM_EXPIRY_MS = 10_000
LOGGED_CHARS = 100
CONNECT_TIMEOUT = 5.0
_KEYS = ("ready", "delayed", "wake", "kinds")  # each queue's keys, in the scripts' order

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
    earlier. A blocked pop returns within a few milliseconds of the earliest run_at among the
    ids delayed in its queues, including ids pushed while it waits. Any connection failure or
    timeout is raised as `QueueUnavailable`.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "taskflow",
        clock: Clock | None = None,
        kinds: bool = False,
    ) -> None:
        self._client = client
        self._kinds = kinds
        self._prefix = prefix
        self._clock: Clock = clock or SystemClock()
        self._marker = f"{prefix}:intact"
        self._push_script = client.register_script(PUSH)
        self._pushes: Coalescer[Sequence[Dispatch]] = Coalescer(self._push_many)
        self._pop_script = client.register_script(POP)
        self._take_kinds = client.register_script(TAKE_KINDS)
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
                ids, due_at = await self._take(queues, limit, blocking=loop.time() < deadline)
                now = loop.time()
                if ids or now >= deadline:
                    return ids
                if due_at is not None and due_at <= now:
                    continue  # a delayed id is due already: promote it at once
                until = min(deadline, now + MAX_BLOCK)
                if due_at is None:
                    ids = await self._block_pop(queues, limit, until - now)
                else:
                    # Also when the pop's own end comes first: the next pop, which finds the
                    # id due, must not wait for a server timeout that may be late.
                    alarm_at = min(due_at, until)
                    ids = await self._block_pop(queues, limit, alarm_at - now, alarm_at=alarm_at)
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
            ready, delayed, _wake, _kinds = self._keys(queue)
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
        return [f"{self._prefix}:q:{queue}:{name}" for name in _KEYS]

    def _push_arguments(self, dispatches: Sequence[Dispatch]) -> tuple[list[str], list[Any]]:
        now = self._clock.now()
        by_queue: defaultdict[str, list[tuple[str, ...]]] = defaultdict(list)
        for d in dispatches:
            run_at = _ceil_ms(d.run_at)
            score = str(_ready_score(d.priority, run_at)) if d.run_at <= now else ""
            item = (str(d.task_id), str(d.priority), str(run_at), score)
            by_queue[d.queue].append((*item, d.type) if self._kinds and d.type else item)
        keys: list[str] = []
        args: list[Any] = []
        for queue, items in by_queue.items():
            keys += self._keys(queue)
            args.append(_encode(items))
        return keys, args

    async def _take(
        self, queues: Sequence[str], limit: int, *, blocking: bool
    ) -> tuple[list[UUID], float | None]:
        """The ids popped, and when nothing was: the loop time the next delayed id is due."""
        keys = [key for queue in queues for key in self._keys(queue)]
        now = self._clock.now()
        taken_at = asyncio.get_running_loop().time()
        args = [_floor_ms(now), limit, PROMOTE_BATCH, PRIORITY_SPAN, MAX_PRIORITY, int(blocking)]
        args.append(int(self._kinds))
        raw, wait_ms, malformed, kinds = await self._pop_script(keys=keys, args=args)
        for member in malformed:
            logger.warning("dropped a malformed delayed member: %r", member)
        ids = _task_ids(raw) if not self._kinds else _with_kinds(raw, kinds, queues)
        if wait_ms < 0:
            return ids, None
        # The script counted from now rounded down to the millisecond.
        since_ms = ((now - _EPOCH) % _MS).total_seconds()
        return ids, taken_at + int(wait_ms) / 1000 - since_ms

    async def _block_pop(
        self, queues: Sequence[str], limit: int, seconds: float, *, alarm_at: float | None = None
    ) -> list[UUID]:
        per_queue = [self._keys(queue) for queue in queues]
        ready = [keys[0] for keys in per_queue]
        keys = ready + [keys[2] for keys in per_queue]
        alarm = None
        if alarm_at is not None:
            alarm = (f"{self._prefix}:alarm:{uuid.uuid4().hex}", alarm_at)
            keys.append(alarm[0])
            seconds += MAX_BLOCK  # the server's timeout is only a backstop for the alarm
        block = max(MIN_BLOCK, math.ceil(seconds * 1000) / 1000)
        # The client's socket timeout would cut a healthy block short (Redis may even answer
        # up to 1/hz late), so this one read gets block + socket timeout instead. Any read
        # error, cancellation included, makes redis-py drop the connection, so a late reply
        # can never be read by someone else.
        pool: Any = self._client.connection_pool  # get_connection is untyped in redis-py
        conn = await pool.get_connection()
        try:
            await conn.send_command("BZMPOP", block, len(keys), *keys, "MIN", "COUNT", limit)
            budget = None if self._socket_timeout is None else block + self._socket_timeout
            async with asyncio.timeout(budget):
                reply: Any = await self._reply(conn, alarm)
        finally:
            await pool.release(conn)
        if not reply:
            return []
        key, pairs = reply  # [key, [[member, score], ...]]
        if _text(key) not in ready:
            return []  # woken (a sooner due time, or the alarm): the caller looks again
        members = [pair[0] for pair in pairs]
        if not self._kinds:
            return _task_ids(members)
        position = ready.index(_text(key))
        try:
            types = await self._take_kinds(keys=[per_queue[position][3]], args=members)
        except _UNAVAILABLE:  # the ids are popped: hand them out, to be read before admission
            types = [""] * len(members)
        kinds = [f"1:{_text(t)}" if t else "" for t in types]
        return _with_kinds(members, kinds, [queues[position]])

    async def _reply(self, conn: Any, alarm: tuple[str, float] | None) -> Any:
        """The blocked command's reply; with an alarm (key, loop time), rung at that time."""
        if alarm is None:
            return await conn.read_response(timeout=math.inf)
        key, at = alarm
        reading = asyncio.ensure_future(conn.read_response(timeout=math.inf))
        try:
            delay = at - asyncio.get_running_loop().time()
            done, _ = await asyncio.wait([reading], timeout=max(0.0, delay))
            if not done:
                await self._ring(key)
            return await reading
        finally:
            if not reading.done():  # cancelled, or the alarm failed: the read must not linger
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)

    async def _ring(self, alarm: str) -> None:
        # Taken by the pop blocked on it; left alone when that pop has returned already, it
        # expires instead of lying there for ever.
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(alarm, {"ring": 0})
        pipe.pexpire(alarm, ALARM_EXPIRY_MS)
        await pipe.execute()


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


def _with_kinds(
    members: Sequence[bytes | str], kinds: Sequence[bytes | str], queues: Sequence[str]
) -> PoppedIds:
    """The ids of ``members`` with the queue and type of each that has one: ``kinds[i]`` is
    "<position in queues, from 1>:<type>" or ""."""
    popped = PoppedIds()
    for member, kind in zip(members, kinds, strict=True):
        task_id = task_id_of(member)
        if task_id is None:
            popped += _task_ids([member])  # logs it, adds nothing
            continue
        popped.append(task_id)
        position, _, kind_type = _text(kind).partition(":")
        if kind_type:
            popped.kinds[task_id] = (queues[int(position) - 1], kind_type)
    return popped


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
        raise QueueUnavailable(f"redis is unreachable: {without_passwords(str(exc))}") from exc
