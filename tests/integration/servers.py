"""Throwaway Redis and PostgreSQL servers on free ports, for tests that stop, pause or kill them.

They never touch the shared servers on 5432 and 6379. Both are context managers that clean up
whatever happened inside the block. Sessions run as root and PostgreSQL refuses root, so the
cluster is initialised and run as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from tests.integration.processes import free_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


class _Throwaway:
    """A server a test starts on entering and always removes on leaving."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisServer(_Throwaway):
    """`redis-server` without persistence: a restart comes back empty, like a lost cache."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password  # None: no AUTH asked
        self.dir = Path(tempfile.mkdtemp(prefix="tf-redis-"))
        self.log_path = self.dir / "redis.log"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = "" if self.password is None else f":{self.password}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._popen is not None, "redis-server is not started"
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2
        )

    def start(self) -> None:
        if self.alive():
            return
        args = ["redis-server", *self._listen_args(), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.dir)]
        if self.password is not None:
            args += ["--requirepass", self.password]
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for(self._answers, timeout=30, what=f"redis-server on port {self.port} to answer")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a paused server is resumed so it can act on it), then SIGKILL."""
        if not self.alive():
            return
        assert self._popen is not None
        self._popen.send_signal(signal.SIGTERM)
        self._popen.send_signal(signal.SIGCONT)
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self._popen is not None and self.alive():
            self._popen.kill()
        if self._popen is not None:
            self._popen.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and every command hangs."""
        assert self.alive(), "redis-server is not running"
        assert self._popen is not None
        self._popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            assert self._popen is not None
            self._popen.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill and start again on the same port, empty (nothing is persisted)."""
        self.kill()
        self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _listen_args(self) -> list[str]:
        return ["--port", str(self.port)]

    def _answers(self) -> bool:
        if not self.alive():
            raise AssertionError(f"redis-server exited early:\n{self.output()[-3000:]}")
        client = self.client()
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()


class PostgresServer(_Throwaway):
    """A PostgreSQL 15 cluster of its own (fsync off), run as the ``postgres`` user."""

    def __init__(self) -> None:
        self.port = free_port()
        # mkdtemp makes a 0700 directory owned by root: hand it to postgres (/tmp is
        # traversable by everyone, so that is all postgres needs to reach it).
        self.dir = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        shutil.chown(self.dir, user=PG_USER, group=PG_USER)
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self._initialised = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def alive(self) -> bool:
        return self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        if not self._initialised:
            self._run(PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER)
            self._initialised = True
        if self.alive():
            return
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        started = self._pg_ctl("start", "-w", "-t", "60", "-o", options, "-l", str(self.log_path))
        assert started.returncode == 0, f"pg_ctl start failed:\n{started.stdout}\n{self.output()}"

    def stop(self) -> None:
        """A clean shutdown (``-m fast``): sessions are ended, then the server exits."""
        self._stop("fast")

    def crash(self) -> None:
        """``-m immediate``: no shutdown checkpoint; the next start runs crash recovery."""
        self._stop("immediate")

    def restart(self) -> None:
        """Stop and start again, keeping the data."""
        self.stop()
        self.start()

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"taskflow_fault_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            import asyncpg

            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=PG_USER, database="postgres"
            )
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.url(name)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            if self._initialised and self.alive():
                self._stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop(self, mode: str) -> None:
        if not self.alive():
            return
        stopped = self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)
        assert stopped.returncode == 0, f"pg_ctl stop failed:\n{stopped.stdout}\n{self.output()}"

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(PG_BIN / "pg_ctl", "-D", str(self.data), *args, check=False)

    def _run(
        self, program: Path, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # cwd: postgres cannot read root's working directory, and the tools complain about it.
        done = subprocess.run(
            ["runuser", "-u", PG_USER, "--", str(program), *args],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{program.name} failed:\n{done.stdout}\n{done.stderr}"
        return done
