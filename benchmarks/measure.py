"""What the benchmark reads: the tasks' own timestamps from PostgreSQL, and RSS from /proc."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import asyncpg

KIB_PER_MIB = 1024


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of real samples, interpolating between the two nearest."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


class Store:
    """Queries on the benchmark's database, over one asyncpg connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, dsn: str) -> Store:
        return cls(await asyncpg.connect(dsn))

    async def close(self) -> None:
        await self._db.close()

    async def async_commit(self, database: str) -> None:
        """New connections to ``database`` commit without waiting for the WAL to reach disk."""
        await self._db.execute(f'ALTER DATABASE "{database}" SET synchronous_commit TO off')

    async def count(self, status: str | None = None) -> int:
        if status is None:
            return int(await self._db.fetchval("SELECT count(*) FROM tasks"))
        return int(await self._db.fetchval("SELECT count(*) FROM tasks WHERE status = $1", status))

    async def wait_success(
        self,
        target: int,
        *,
        check: Callable[[], Any] = lambda: None,
        interval: float = 0.05,
        stall: float = 60.0,
    ) -> float:
        """Poll until ``target`` tasks are SUCCESS; the monotonic time when that was seen.

        ``check()`` runs every poll (e.g. to fail when a worker died); giving up when the count
        has not moved for ``stall`` seconds.
        """
        last, moved = -1, time.monotonic()
        while True:
            done = await self.count("SUCCESS")
            now = time.monotonic()
            if done >= target:
                return now
            if done != last:
                last, moved = done, now
            elif now - moved > stall:
                failed = await self.count("FAILED")
                raise TimeoutError(
                    f"stalled at {done} of {target} SUCCESS for {stall:.0f} s ({failed} FAILED)"
                )
            check()
            await asyncio.sleep(interval)

    async def drain_span(self) -> float:
        """Seconds from the first claim to the last completion:
        max(finished_at) - min(started_at)."""
        span = await self._db.fetchval(
            "SELECT EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) FROM tasks"
        )
        if span is None:
            raise RuntimeError("no task has started and finished")
        return float(span)

    async def latencies_ms(self, ids: Sequence[str]) -> tuple[list[float], list[float]]:
        """Per task: (started_at - created_at, finished_at - created_at) in milliseconds."""
        rows = await self._db.fetch(
            """
            SELECT EXTRACT(EPOCH FROM started_at - created_at) * 1000 AS pickup,
                   EXTRACT(EPOCH FROM finished_at - created_at) * 1000 AS total
            FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'SUCCESS'
            """,
            [uuid.UUID(i) for i in ids],
        )
        return [float(r["pickup"]) for r in rows], [float(r["total"]) for r in rows]

    async def lateness_ms(self, ids: Sequence[str], attempt: int) -> list[float]:
        """Per task now at its ``attempt``-th attempt: started_at - run_at in milliseconds,
        how long after it was due that attempt started."""
        rows = await self._db.fetch(
            """
            SELECT EXTRACT(EPOCH FROM started_at - run_at) * 1000 AS late
            FROM tasks WHERE id = ANY($1::uuid[]) AND attempts = $2 AND started_at IS NOT NULL
            """,
            [uuid.UUID(i) for i in ids],
            attempt,
        )
        return [float(r["late"]) for r in rows]

    async def retry_waits(self, ids: Sequence[str]) -> list[float]:
        """Per task: seconds from the end of its first attempt to the run_at of the next."""
        rows = await self._db.fetch(
            """
            SELECT EXTRACT(EPOCH FROM t.run_at - a.finished_at) AS wait
            FROM tasks t JOIN attempts a ON a.task_id = t.id AND a.attempt = 1
            WHERE t.id = ANY($1::uuid[]) AND t.attempts > 1
            """,
            [uuid.UUID(i) for i in ids],
        )
        return [float(r["wait"]) for r in rows]

    async def count_outcome(self, ids: Sequence[str], outcome: str) -> int:
        """How many of these tasks have an attempt that ended with ``outcome``."""
        where = "task_id = ANY($1::uuid[]) AND outcome = $2"
        return await self._count(f"SELECT count(*) FROM attempts WHERE {where}", ids, outcome)

    async def count_started(self, ids: Sequence[str], attempt: int) -> int:
        """How many of these tasks have started their ``attempt``-th attempt."""
        where = "id = ANY($1::uuid[]) AND attempts >= $2"
        return await self._count(f"SELECT count(*) FROM tasks WHERE {where}", ids, attempt)

    async def _count(self, query: str, ids: Sequence[str], value: object) -> int:
        return int(await self._db.fetchval(query, [uuid.UUID(i) for i in ids], value))

    async def truncate_all(self, keep: Collection[str] = ()) -> None:
        """Empty every table of the schema but Alembic's version and those named in ``keep``."""
        tables = await self._db.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        tables = [t for t in tables if t["name"] not in keep]
        if tables:
            names = ", ".join(t["name"] for t in tables)
            await self._db.execute(f"TRUNCATE {names} CASCADE")

    async def server_facts(self) -> dict[str, str]:
        facts = {}
        for setting in ("server_version", "fsync", "synchronous_commit"):
            facts[setting] = str(await self._db.fetchval(f"SHOW {setting}"))
        return facts


async def redis_version(url: str) -> str:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        info = await client.info("server")
        return str(info.get("redis_version", "?"))
    finally:
        await client.aclose()


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, or None when it is gone."""
    try:
        return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def _stat_cpu(stat: str) -> float:
    """User + system CPU seconds from the text of /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - idle, total


#: Process names of the servers whose CPU a window can count, when they run on this host.
SERVERS = {"postgres": "PostgreSQL", "redis-server": "Redis"}


def server_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (server, CPU seconds so far) of every local PostgreSQL and Redis process."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name in SERVERS:
            found[int(entry.name)] = (SERVERS[name], _stat_cpu(text))
    return found


class CpuWindow:
    """How many cores the machine and some processes used between `start()` and `stop()`.

    With ``servers``, also the CPU seconds of every PostgreSQL and Redis process on this host
    (backends that start inside the window count from zero; one that ends inside it is lost).
    """

    def __init__(self, *, servers: bool = False) -> None:
        self._count_servers = servers
        self._servers: dict[int, tuple[str, float]] = {}

    def start(self, pids: Sequence[int] = ()) -> None:
        self._wall = time.monotonic()
        self._machine = machine_jiffies()
        self._procs = {pid: cpu_seconds(pid) for pid in pids}
        if self._count_servers:
            self._servers = server_cpu()

    def add(self, pids: Sequence[int]) -> None:
        """Processes started after `start()`: all their CPU time counts."""
        self._procs.update(dict.fromkeys(pids, 0.0))

    def stop(self) -> dict[str, float]:
        """``machine``: cores busy (of os.cpu_count()); ``procs``: cores used by the pids;
        ``procs_seconds``: the CPU seconds they used."""
        wall = time.monotonic() - self._wall
        busy, total = machine_jiffies()
        cpus = os.cpu_count() or 1
        share = (busy - self._machine[0]) / max(1, total - self._machine[1])
        used = 0.0
        for pid, before in self._procs.items():
            after = cpu_seconds(pid)
            if before is not None and after is not None:
                used += after - before
        result = {
            "machine": share * cpus,
            "procs": used / wall if wall > 0 else 0.0,
            "procs_seconds": used,
        }
        if self._count_servers:
            for pid, (server, after) in server_cpu().items():
                before = self._servers.get(pid, (server, 0.0))[1]
                result[server] = result.get(server, 0.0) + after - before
        return result
