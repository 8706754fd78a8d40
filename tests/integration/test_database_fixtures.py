"""The databases the tests make on the shared PostgreSQL go however a test ends: dropped when
it passes, fails or is stopped (SIGINT, SIGTERM), and, once a run that died left them, by the
next session's sweep, which never drops one that is recent or in use (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, Databases, drop_abandoned_databases
from tests.integration.processes import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("database_session.py")
# Not passed on to that session, which runs as if from a shell: the variables of the
# pytest-xdist worker this one may be, and options from the environment (PYTEST_ADDOPTS="-n 2").
NOT_INHERITED = ("PYTEST_XDIST_", "PYTEST_ADDOPTS")


def existing(names: list[str]) -> list[str]:
    async def ask() -> list[str]:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", names
            )
        finally:
            await conn.close()
        return sorted(row[0] for row in rows)

    return asyncio.run(ask())


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _held(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}")


def test_drop_all_drops_each_database_even_one_still_in_use() -> None:
    databases = Databases()
    names = sorted(name_of(databases()) for _ in range(2))
    assert existing(names) == names

    async def drop_while_held() -> None:
        held = await _held(names[0])  # a process the test left running, say
        try:
            await asyncio.to_thread(databases.drop_all)
            gone = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)
            with pytest.raises(gone):
                await held.fetchval("SELECT 1")  # its session was ended first
        finally:
            held.terminate()

    asyncio.run(drop_while_held())
    assert existing(names) == []
    assert databases.made == []


def test_the_sweep_drops_an_old_idle_database_never_a_recent_or_a_used_one() -> None:
    databases = Databases()
    idle, used = (name_of(databases()) for _ in range(2))

    async def sweep(prefix: str, older_than: timedelta) -> list[str]:
        return await drop_abandoned_databases(prefix, older_than)

    async def run() -> None:
        # Its name as the prefix: the sweep can reach no other run's database.
        assert await sweep(idle, timedelta(hours=1)) == []  # recent
        held = await _held(used)
        try:
            assert await sweep(used, timedelta(0)) == []  # in use
        finally:
            await held.close()

    try:
        asyncio.run(run())
        assert existing([idle, used]) == sorted([idle, used])
        # PG_VERSION's time is whole seconds: "older than 0 s" holds within one.
        wait_for(
            lambda: asyncio.run(sweep(idle, timedelta(0))) == [idle],
            timeout=10,
            interval=0.2,
            what="the idle database to be swept",
        )
        assert existing([idle, used]) == [used]
    finally:
        databases.drop_all()


# "SIGTERM-xdist": a run on pytest-xdist workers (`make test`'s), its controller alone sent
# SIGTERM (`kill`): its workers tear down before it ends.
@pytest.mark.parametrize(
    ("ending", "workers"),
    [("fail", 0), ("SIGINT", 0), ("SIGTERM", 0), ("SIGTERM", 2)],
    ids=["fail", "SIGINT", "SIGTERM", "SIGTERM-xdist"],
)
def test_a_session_drops_its_databases_however_its_test_ends(
    tmp_path: Path, ending: str, workers: int
) -> None:
    told = tmp_path / "names"
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env |= {"TASKFLOW_TEST_NAMES": str(told), "TASKFLOW_TEST_ENDING": ending}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers)]
    session = subprocess.Popen(
        [*command, str(SESSION)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        names = wait_for(
            lambda: told.exists() and told.read_text().split(),
            timeout=180,  # a pytest session of its own: its start, its template, its databases
            what="the session to make its databases",
        )
        if ending != "fail":
            assert existing(names) == sorted(names)
            session.send_signal(getattr(signal, ending))
        output, _ = session.communicate(timeout=180)  # its teardown drops every database
    finally:
        if session.poll() is None:
            session.kill()
            session.communicate()
    assert session.returncode == (1 if ending == "fail" else 2), output
    assert existing(names) == [], output
