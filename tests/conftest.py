"""Shared fixtures. Tests that need PostgreSQL or Redis fail (never skip) when they are absent."""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, settings

from tests.schedule import longest_first

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TASKFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TASKFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


#: Every database the tests make on the shared server is named so. Other runs on this machine
#: use the same server and the same prefix at the same time.
TEST_DATABASE_PREFIX = "taskflow_test_"
#: A database with the prefix this old that no session uses was left by a run that died (a
#: whole `make test` takes well under an hour); a younger one may be another run's.
ABANDONED_AFTER = timedelta(hours=3)


async def _execute(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _async_url(admin_url: str, database: str) -> str:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


class Databases:
    """Makes databases on the shared PostgreSQL (call it: the new one's URL), empty or, with
    ``migrated=True``, a copy of the run's migrated template; ``drop_all`` drops every one it
    made."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, *, migrated: bool = False) -> str:
        name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
        copied = f' TEMPLATE "{_migrated_template()}"' if migrated else ""
        self.made.append(name)  # first: an interrupted CREATE is dropped too (IF EXISTS)
        asyncio.run(_execute(f'CREATE DATABASE "{name}"{copied}'))
        return _async_url(PG_ADMIN_URL, name)

    def drop_all(self) -> None:
        """Drops each, its sessions ended first (a process the test left), however the others
        go; then raises if any could not be dropped."""
        failed = []
        while self.made:
            name = self.made.pop()
            try:
                asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:
                failed.append(f"{name}: {exc!r}")
        if failed:
            raise RuntimeError(f"test databases left on the server: {failed}")


# The run's migrated template: made by the first test that asks for a migrated database, dropped
# at the end of the session (or, if the run dies, by a later run's sweep: it has the prefix).
_TEMPLATE = Databases()


def _migrated_template() -> str:
    """The name of a database migrated once for the whole run, to copy.

    Copying it (``CREATE DATABASE … TEMPLATE``) takes a tenth of a second; migrating an empty
    one takes several times that, and a `taskflow migrate` process seconds.
    """
    if not _TEMPLATE.made:
        from taskflow.adapters.sql.engine import migrate

        url = _TEMPLATE()
        asyncio.run(migrate(url))  # its connections are closed after: a template may have none
    return _TEMPLATE.made[0]


@pytest.fixture(scope="session", autouse=True)
def _template_dropped() -> Iterator[None]:
    yield
    _TEMPLATE.drop_all()


_ABANDONED = """
SELECT d.datname FROM pg_database d
WHERE starts_with(d.datname, $1)
  AND (pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification < now() - $2::interval
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
"""


async def drop_abandoned_databases(
    prefix: str = TEST_DATABASE_PREFIX, older_than: timedelta = ABANDONED_AFTER
) -> list[str]:
    """Drops the databases named ``prefix…`` made more than ``older_than`` ago (their
    ``PG_VERSION`` file is written once, when they are made) that no session uses; returns
    their names.

    Never one with a session: the query leaves those out, and the DROP, without FORCE, refuses
    one that got a session since. Nothing, when the server will not say how old they are
    (``pg_stat_file`` wants a superuser)."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        try:
            rows = await conn.fetch(_ABANDONED, prefix, older_than)
        except asyncpg.InsufficientPrivilegeError:
            return []
        dropped = []
        for (name,) in rows:
            try:
                await conn.execute(f'DROP DATABASE "{name}"')
            except (asyncpg.ObjectInUseError, asyncpg.InvalidCatalogNameError):
                continue  # in use after all, or another run dropped it first
            dropped.append(name)
        return dropped
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def _abandoned_databases_dropped() -> None:
    """Once a session, before its first database: what runs that died left (``kill -9``, a
    machine that went down) is dropped."""
    asyncio.run(drop_abandoned_databases())


def _made_then_dropped() -> Iterator[Databases]:
    databases = Databases()
    try:
        yield databases
    finally:  # pytest tears a fixture down after a failure and after Ctrl-C as well
        databases.drop_all()


@pytest.fixture
def pg_database_factory(_abandoned_databases_dropped: None) -> Iterator[Databases]:
    """Makes empty PostgreSQL databases for one test; drops them when it ends, pass or fail."""
    yield from _made_then_dropped()


@pytest.fixture(scope="module")
def module_pg_database_factory(_abandoned_databases_dropped: None) -> Iterator[Databases]:
    """``pg_database_factory`` for a module's fixtures: dropped when the module is done."""
    yield from _made_then_dropped()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """A pytest-xdist worker's first SIGINT or SIGTERM: stop as on Ctrl-C. Its teardown is under
    way then, and no SIGTERM cuts it short (its controller passes each signal on, and `timeout`
    signals every process of the run as well); a second Ctrl-C still does."""
    signal.signal(signal.SIGTERM, _ignore)
    if signal.getsignal(signal.SIGINT) is _interrupt_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt(f"signal {signum}")


def _children() -> list[int]:
    """The live child processes of this one: in pytest-xdist's controller, its workers."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:  # ended meanwhile
            continue
        if int(parent) == me and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _pass_on_to_workers(signum: int, frame: FrameType | None) -> None:
    """pytest-xdist's controller, on its first SIGINT or SIGTERM: each worker is sent SIGTERM,
    tears its fixtures down and ends its session, and then the run ends, interrupted. Stopped
    itself, the controller would kill its workers 10 s later, whatever their teardown had left
    (databases, Redis keys, `taskflow` processes). A second signal stops it at once."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is _pass_on_to_workers:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    workers = _children()
    if not workers:
        raise KeyboardInterrupt(f"signal {signum}")
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _on_stop(handler: Callable[[int, FrameType | None], None], *, ctrl_c: bool) -> None:
    """``handler`` for SIGTERM, and with ``ctrl_c`` for SIGINT, unless the run was started with
    either one ignored (a run started in the background ignores SIGINT)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)
    if ctrl_c and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    longest_first(items)  # tests/schedule.py: the longest modules first


def pytest_sessionstart(session: pytest.Session) -> None:
    # `timeout`, CI runners and `kill` stop a run with SIGTERM, which ends Python on the spot:
    # taken as Ctrl-C instead, pytest tears the fixtures down, and their databases go. Under
    # pytest-xdist the workers tear down, and their controller waits for them.
    worker = hasattr(session.config, "workerinput")
    if worker:
        _on_stop(_interrupt_once, ctrl_c=True)
    elif session.config.pluginmanager.hasplugin("dsession"):
        _on_stop(_pass_on_to_workers, ctrl_c=True)
    else:
        _on_stop(_interrupt, ctrl_c=False)
    # Where PYTHONDONTWRITEBYTECODE is set (CI images often set it) no Python process writes
    # bytecode, so each `taskflow` process the tests start would compile every taskflow module
    # again: half a second of its start. Compiled here once, the bytecode is read by all of
    # them; a changed file is compiled again (Python checks each one's modification time).
    # Under pytest-xdist the controller has compiled everything before it starts its workers:
    # they would only compile the same files again, all at once, into the same .pyc files.
    if worker:
        return
    for folder in ("src", "tests", "examples", "benchmarks"):
        compileall.compile_dir(ROOT / folder, quiet=1, workers=1)


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


# Every key prefix handed out in this session; at its end none may have keys left.
_PREFIXES: set[str] = set()


def new_redis_prefix() -> str:
    """A key prefix on the shared Redis for one test or one stack of processes.

    Whoever takes one deletes its keys when done (``delete_redis_keys``), after stopping
    whatever writes under it; the session fails if any are left.
    """
    prefix = f"tftest:{uuid.uuid4().hex[:12]}"
    _PREFIXES.add(prefix)
    return prefix


def redis_keys(prefix: str, *, delete: bool = False) -> list[bytes]:
    """The keys under ``prefix`` on the shared Redis; ``delete``: deleted too."""
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys and delete:
            client.delete(*keys)
    return keys


def delete_redis_keys(prefix: str) -> None:
    redis_keys(prefix, delete=True)


@pytest.fixture(scope="session", autouse=True)
def no_redis_key_left_behind() -> Iterator[None]:
    """Fails the session if a prefix it handed out still has keys on the shared Redis.

    Only this session's prefixes: other runs may be using the same Redis at the same time.
    """
    yield
    # Deleted as they are found, so that the next run starts clean all the same.
    left = {p: keys for p in sorted(_PREFIXES) if (keys := redis_keys(p, delete=True))}
    if left:
        pytest.fail(f"tests left Redis keys behind: {left}")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = new_redis_prefix()
    yield prefix
    delete_redis_keys(prefix)
