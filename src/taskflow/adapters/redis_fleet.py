"""The fleet on Redis: live workers, the queues' depths, pause notices (decision 25).

Under the key prefix P:

- ``P:worker:<id>`` holds a worker's last beat (JSON), expiring three beats after it; ``P:workers``
  is the set of ids that have beaten. Listing reads the set and the keys in two commands and
  drops from the set the ids whose key has expired. A Redis that restarts empty loses both;
  each worker is listed again at its next beat.
- the depths are read from the dispatch queue's own sets (see ``adapters/redis.py``);
- ``P:pause`` is the pub/sub channel of pause and resume notices.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import redis.asyncio

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.redis import PRIORITY_SPAN, logger, mapped_errors
from taskflow.adapters.redis_pubsub import messages
from taskflow.domain.fleet import QueueDepth, WorkerInfo
from taskflow.domain.limits import MAX_PRIORITY, MIN_PRIORITY
from taskflow.domain.ports import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BANDS = range(MAX_PRIORITY - MIN_PRIORITY + 1)  # one score band per priority in the ready set
_SCAN_COUNT = 1000


class _Beat(msgspec.Struct, frozen=True):
    id: str
    host: str
    pid: int
    version: str
    queues: list[str]
    concurrency: int
    running: list[UUID]
    started_at: datetime
    last_seen_at: datetime


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Beat).decode


class RedisWorkerRegistry:
    """`WorkerRegistry` on Redis: one expiring key per worker, and a set of their ids."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "taskflow") -> None:
        self._client = client
        self._prefix = prefix
        self._index = f"{prefix}:workers"

    async def beat(self, worker: WorkerInfo, *, ttl_seconds: float) -> None:
        beat = _Beat(
            worker.id,
            worker.host,
            worker.pid,
            worker.version,
            list(worker.queues),
            worker.concurrency,
            list(worker.running),
            worker.started_at,
            worker.last_seen_at,
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(worker.id), _encode(beat), px=max(1, math.ceil(ttl_seconds * 1000)))
        pipe.sadd(self._index, worker.id)
        with mapped_errors():
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._key(worker_id))
        pipe.srem(self._index, worker_id)
        with mapped_errors():
            await pipe.execute()

    async def live(self) -> list[WorkerInfo]:
        with mapped_errors():
            ids = sorted(_text(i) for i in await self._client.smembers(self._index))
            if not ids:
                return []
            beats = await self._client.mget([self._key(i) for i in ids])
            gone = [i for i, raw in zip(ids, beats, strict=True) if raw is None]
            if gone:
                await self._client.srem(self._index, *gone)
        found = []
        for raw in beats:
            if raw is None:
                continue
            try:
                beat = _decode(raw)
            except msgspec.DecodeError:
                logger.warning("dropped a worker record that is not one: %r", raw[:100])
                continue
            found.append(_info(beat))
        return found

    def _key(self, worker_id: str) -> str:
        return f"{self._prefix}:worker:{worker_id}"


class RedisQueueGauge:
    """`QueueGauge` on the dispatch queue's sorted sets: a SCAN for the queues' keys, then one
    pipeline of O(log n) reads per queue (the ready set's earliest member in each priority band
    gives the oldest ready id without reading the set)."""

    def __init__(
        self, client: redis.asyncio.Redis, *, prefix: str = "taskflow", clock: Clock | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock: Clock = clock or SystemClock()
        self._pattern = f"{_glob_escape(prefix)}:q:*"
        self._key = re.compile(rf"^{re.escape(prefix)}:q:([^:]+):(ready|delayed)$")

    async def depths(self) -> dict[str, QueueDepth]:
        with mapped_errors():
            queues = sorted(await self._queues())
            if not queues:
                return {}
            now_ms = (self._clock.now() - _EPOCH) // timedelta(milliseconds=1)
            pipe = self._client.pipeline(transaction=False)
            for queue in queues:
                ready, delayed = self._keys(queue)
                pipe.zcard(ready)
                pipe.zcount(delayed, "-inf", now_ms)
                pipe.zcount(delayed, f"({now_ms}", "+inf")
                pipe.zrange(delayed, 0, 0, withscores=True)
                for band in _BANDS:
                    low = band * PRIORITY_SPAN
                    pipe.zrangebyscore(
                        ready, low, low + PRIORITY_SPAN - 1, start=0, num=1, withscores=True
                    )
            replies = await pipe.execute()
        per_queue = 4 + len(_BANDS)
        return {
            queue: _depth(replies[i * per_queue : (i + 1) * per_queue], now_ms)
            for i, queue in enumerate(queues)
        }

    async def _queues(self) -> set[str]:
        found: set[str] = set()
        async for key in self._client.scan_iter(match=self._pattern, count=_SCAN_COUNT):
            match = self._key.match(_text(key))
            if match:
                found.add(match.group(1))
        return found

    def _keys(self, queue: str) -> tuple[str, str]:
        return f"{self._prefix}:q:{queue}:ready", f"{self._prefix}:q:{queue}:delayed"


class RedisPauseNotices:
    """`PauseNotices` on Redis pub/sub; one subscriber connection per `pauses` call."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "taskflow") -> None:
        self._client = client
        self.channel = f"{prefix}:pause"

    async def notify_pause(self, queue: str, paused: bool) -> None:
        with mapped_errors():
            await self._client.publish(self.channel, f"{int(paused)}:{queue}")

    async def pauses(self) -> AsyncIterator[tuple[str, bool]]:
        async for data in messages(self._client, self.channel):
            flag, _, queue = _text(data).partition(":")
            if flag not in ("0", "1") or not queue:
                logger.warning("dropped a pause notice that is not one")
                continue
            yield queue, flag == "1"


def _depth(replies: list[Any], now_ms: int) -> QueueDepth:
    ready_count, due_delayed, waiting, earliest_delayed, *bands = replies
    oldest: float | None = None
    for band, found in zip(_BANDS, bands, strict=True):
        if found:
            run_at = float(found[0][1]) - band * PRIORITY_SPAN
            oldest = run_at if oldest is None else min(oldest, run_at)
    # Due ids still in the delayed set are ready: only a pop moves them (none, unconsumed).
    if earliest_delayed and float(earliest_delayed[0][1]) <= now_ms:
        run_at = float(earliest_delayed[0][1])
        oldest = run_at if oldest is None else min(oldest, run_at)
    return QueueDepth(
        ready=int(ready_count) + int(due_delayed),
        delayed=int(waiting),
        oldest_ready_at=None if oldest is None else _EPOCH + timedelta(milliseconds=oldest),
    )


def _info(beat: _Beat) -> WorkerInfo:
    return WorkerInfo(
        id=beat.id,
        host=beat.host,
        pid=beat.pid,
        version=beat.version,
        queues=tuple(beat.queues),
        concurrency=beat.concurrency,
        running=tuple(beat.running),
        started_at=beat.started_at,
        last_seen_at=beat.last_seen_at,
    )


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
