"""Shared fixtures. Tests that need PostgreSQL or Redis fail (never skip) when they are absent."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

PG_ADMIN_URL = os.environ.get("TASKFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TASKFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def _create_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _async_url(admin_url: str, database: str) -> str:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[object]:
    """Creates empty PostgreSQL databases for this run; drops them all at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"taskflow_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_create_database(name))
        created.append(name)
        return _async_url(PG_ADMIN_URL, name)

    yield make
    for name in created:
        asyncio.run(_drop_database(name))


@pytest.fixture(scope="session")
def pg_url(pg_database_factory: object) -> str:
    """One migrated-on-demand database shared by the session (tests must not assume it is empty)."""
    return pg_database_factory()  # type: ignore[operator,no-any-return]


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
