"""The deployment under test: a database and a Redis key prefix of its own, and real processes.

It creates `taskflow_bench_<random>` on the configured PostgreSQL server and uses the Redis key
prefix of the same name; `close()` stops every process it started, drops that database (and no
other) and deletes the keys under that prefix. `close()` is idempotent and synchronous, so it
can run from `finally`, from `atexit` and after a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
import uvloop
from sqlalchemy.engine import URL, make_url

from benchmarks.auth import KEY_TABLE, check_enforced, create_key
from benchmarks.client import Headers, bearer, wait_until_up
from benchmarks.measure import Store, proc_status_kib

T = TypeVar("T")

TASKFLOW = str(Path(sys.executable).with_name("taskflow"))
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/taskflow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def is_local(address: str) -> bool:
    """Whether ``address`` (host:port) names this host."""
    name = address.rsplit(":", 1)[0].strip("[]")
    return name in ("127.0.0.1", "localhost", "::1", socket.gethostname(), socket.getfqdn())


def safe_url(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class Peak:
    role: str  # "api" or "worker"
    phase: str
    vm_hwm_kib: int


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-1500:].strip() or "(no output)"
            raise RuntimeError(f"{self.role} (pid {self.pid}) exited with {code}: {tail}")


@dataclass
class Deployment:
    database_url: str = field(
        default_factory=lambda: os.environ.get("TASKFLOW_DATABASE_URL") or DEFAULT_DATABASE_URL
    )
    redis_url: str = field(
        default_factory=lambda: os.environ.get("TASKFLOW_REDIS_URL") or DEFAULT_REDIS_URL
    )
    settings: dict[str, str] = field(default_factory=dict)  # extra TASKFLOW_* for the processes
    auth: bool = False  # True: create() makes an API key, and every request sends it
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskflow-bench-")))
    name: str = field(default_factory=lambda: f"taskflow_bench_{secrets.token_hex(6)}")
    phase: str = "setup"
    processes: list[Proc] = field(default_factory=list)
    peaks: list[Peak] = field(default_factory=list)
    _created: bool = False
    _api_key: str | None = None
    _closed: bool = False
    _started: int = 0

    def __post_init__(self) -> None:
        url = make_url(self.database_url)
        if not url.drivername.startswith("postgresql"):
            raise ValueError(f"TASKFLOW_DATABASE_URL must be PostgreSQL, got {url.drivername}")
        self._bench_url = url.set(drivername="postgresql+asyncpg", database=self.name)
        self._admin = url.set(drivername="postgresql", database="postgres")
        self.dsn = self._bench_url.set(drivername="postgresql").render_as_string(False)

    # -- what is where ----------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self.name

    @property
    def database_host(self) -> str:
        return f"{self._bench_url.host or 'localhost'}:{self._bench_url.port or 5432}"

    @property
    def redis_host(self) -> str:
        url = urlsplit(self.redis_url)
        return f"{url.hostname}:{url.port or 6379}" if url.hostname else self.redis_url

    @property
    def headers(self) -> Headers:
        """What every HTTP request to the APIs carries: the API key with ``auth``, else nothing."""
        return bearer(self._api_key)

    def describe(self) -> dict[str, str]:
        return {
            "database": safe_url(self._bench_url),
            "redis": safe_url(self.redis_url),
            "redis_prefix": self.prefix,
            "logs": str(self.logs),
        }

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        env.update(
            TASKFLOW_DATABASE_URL=self._bench_url.render_as_string(hide_password=False),
            TASKFLOW_REDIS_URL=self.redis_url,
            TASKFLOW_REDIS_PREFIX=self.prefix,
            TASKFLOW_HOST=HOST,
        )
        env.update(self.settings)
        return env

    # -- database ---------------------------------------------------------------------------

    async def create(self) -> None:
        admin = await asyncpg.connect(self._admin.render_as_string(hide_password=False))
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
            self._created = True
        finally:
            await admin.close()
        migrate = await asyncio.create_subprocess_exec(
            TASKFLOW,
            "migrate",
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"taskflow migrate failed: {output.decode(errors='replace')}")
        if self.auth:
            self._api_key = await create_key(TASKFLOW, self.env())

    async def _drop(self) -> None:
        admin = await asyncpg.connect(self._admin.render_as_string(hide_password=False))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def clear_redis(self) -> None:
        client = aioredis.from_url(self.redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{self.prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, role: str, args: list[str], env: dict[str, str]) -> Proc:
        self._started += 1
        log_path = self.logs / f"{self._started:02d}-{self.phase}-{role}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [TASKFLOW, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches only us; we stop them ourselves
            )
        proc = Proc(role, popen, log_path)
        self.processes.append(proc)
        return proc

    async def start_apis(self, count: int = 1) -> list[Proc]:
        apis = []
        for _ in range(count):
            port = free_port()
            proc = self._spawn("api", ["api"], {**self.env(), "TASKFLOW_PORT": str(port)})
            proc.port = port
            apis.append(proc)
        for proc in apis:
            assert proc.port is not None
            await wait_until_up(
                HOST,
                proc.port,
                "/health/live",
                timeout=60,
                alive=proc.check_alive,
                headers=self.headers,
            )
            if self.auth:
                await check_enforced(HOST, proc.port, self.headers)
        return apis

    def start_workers(
        self, count: int = 1, settings: Mapping[str, str] | None = None
    ) -> list[Proc]:
        """``settings``: TASKFLOW_* of these processes only, over the deployment's."""
        env = {**self.env(), **(settings or {})}
        return [self._spawn("worker", ["worker"], env) for _ in range(count)]

    def running(self, role: str) -> list[Proc]:
        return [p for p in self.processes if p.role == role and p.popen.poll() is None]

    async def stop(self, procs: list[Proc], timeout: float = 40.0) -> None:
        """SIGTERM (SIGKILL after ``timeout``); records each one's peak RSS first."""
        for proc in procs:
            hwm = proc_status_kib(proc.pid, "VmHWM")
            if hwm is not None:
                self.peaks.append(Peak(proc.role, self.phase, hwm))
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                await asyncio.to_thread(proc.popen.wait, max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(10)
            self.processes.remove(proc)

    async def hand_back(self, proc: Proc) -> None:
        """Stop a worker the quick way: a second SIGTERM makes it release its running tasks at
        once instead of letting them finish."""
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)  # two signals in a row could arrive as one
        await self.stop([proc])

    async def reset(self, store: Store) -> None:
        """Stop every process, empty the tables (but the API key's, with ``auth``) and the
        Redis keys: a fresh start."""
        await self.stop(list(self.processes))
        await store.truncate_all(keep=(KEY_TABLE,) if self.auth else ())
        await self.clear_redis()

    # -- the end ----------------------------------------------------------------------------

    def close(self, *, keep_logs: bool = False) -> list[str]:
        """Kill what is left, drop the database, delete the keys. Answers what went wrong."""
        if self._closed:
            return []
        self._closed = True
        problems = []
        for proc in self.processes:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.processes:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)
        self.processes.clear()
        if self._created:
            try:
                asyncio.run(self._drop())
            except Exception as exc:
                problems.append(f"could not drop database {self.name}: {exc!r}")
        try:
            asyncio.run(self.clear_redis())
        except Exception as exc:
            problems.append(f"could not delete Redis keys {self.prefix}:*: {exc!r}")
        if not keep_logs:
            shutil.rmtree(self.logs, ignore_errors=True)
        return problems


def in_own_database(job: Callable[[Deployment], Coroutine[Any, Any, T]]) -> T:
    """Run ``job`` on uvloop in a database and Redis prefix of its own, removed at the end
    (the in-process tools: profile_drain, rss_soak)."""
    deploy = Deployment()
    try:
        asyncio.run(deploy.create())
        return uvloop.run(job(deploy))
    finally:
        for problem in deploy.close():
            print(problem)
