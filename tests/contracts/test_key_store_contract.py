"""The KeyStore contract, on the in-memory fake, SQLite and PostgreSQL.

What it promises: a key comes back whole by its hash, revoked or not; the hash is unique;
revoking stamps the key once and keeps it listed; ``any_exist`` counts revoked keys too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.memory import InMemoryTaskRepository
from taskflow.adapters.sql import SqlTaskRepository
from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.domain.keys import ApiKey, Scope, hash_key
from taskflow.domain.ports import KeyStore

NOW = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def keys(store_url: str) -> AsyncIterator[KeyStore]:
    if store_url == "memory":
        yield InMemoryTaskRepository(SystemClock()).key_store()
        return
    await migrate(store_url)
    engine = create_engine(store_url)
    repo = SqlTaskRepository(engine)
    yield repo.key_store()
    await repo.close()
    await engine.dispose()


def _key(secret: str, *, at: datetime = NOW, tenant: str = "default") -> ApiKey:
    return ApiKey(
        id=uuid.uuid4(),
        name=f"name of {secret}",
        prefix=secret[:10],
        hash=hash_key(secret),
        scopes=frozenset({Scope.READ, Scope.SUBMIT}),
        tenant=tenant,
        created_at=at,
    )


async def test_a_key_comes_back_whole_by_its_hash(keys: KeyStore) -> None:
    assert not await keys.any_exist()
    key = _key("tf_one", tenant="acme")
    await keys.create(key)
    assert await keys.find_by_hash(hash_key("tf_one")) == key
    assert await keys.find_by_hash(hash_key("tf_two")) is None
    assert await keys.find_by_id(key.id) == key
    assert await keys.find_by_id(uuid.uuid4()) is None
    assert await keys.any_exist()


async def test_revoking_stamps_once_and_keeps_the_key(keys: KeyStore) -> None:
    first, second = _key("tf_a"), _key("tf_b", at=NOW + timedelta(seconds=1))
    await keys.create(first)
    await keys.create(second)
    revoked = await keys.revoke(first.id, now=NOW + timedelta(minutes=1))
    assert revoked is not None
    assert revoked.revoked_at == NOW + timedelta(minutes=1)
    again = await keys.revoke(first.id, now=NOW + timedelta(hours=1))
    assert again == revoked
    assert await keys.revoke(uuid.uuid4(), now=NOW) is None
    assert await keys.find_by_hash(first.hash) == revoked
    assert await keys.find_by_id(first.id) == revoked
    assert [k.id for k in await keys.list()] == [first.id, second.id]
    assert await keys.any_exist()


async def test_two_keys_cannot_share_a_hash(keys: KeyStore) -> None:
    await keys.create(_key("tf_same"))
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own
        await keys.create(_key("tf_same"))
