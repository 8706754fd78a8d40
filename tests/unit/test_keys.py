"""API keys: the KeyService on the in-memory store, its cache timed by a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime

import pytest

from taskflow.adapters.memory_keys import InMemoryKeyStore
from taskflow.domain.errors import KeyNotFound, StoreUnavailable
from taskflow.domain.keys import KEY_PREFIX, Principal, Scope, hash_key, parse_scopes
from taskflow.domain.services.keys import KeyService
from tests.clocks import FakeClock

READ = frozenset({Scope.READ})


class CountingStore(InMemoryKeyStore):
    """Counts the lookups, as the cache is there to spare them."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.lookups_by_id = 0
        self.existence_checks = 0

    async def find_by_hash(self, digest: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().find_by_hash(digest)

    async def find_by_id(self, key_id: uuid.UUID):  # type: ignore[no-untyped-def]
        self.lookups_by_id += 1
        return await super().find_by_id(key_id)

    async def any_exist(self) -> bool:
        self.existence_checks += 1
        return await super().any_exist()


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _service(store: InMemoryKeyStore, ticker: Ticker, **options: int) -> KeyService:
    tokens = (f"token{i:040d}" for i in itertools.count())
    return KeyService(
        store=store,
        clock=FakeClock(datetime(2026, 12, 1, tzinfo=UTC)),
        new_id=uuid.uuid4,
        token=lambda: next(tokens),
        monotonic=ticker,
        **options,  # type: ignore[arg-type]
    )


async def test_a_key_is_shown_once_and_stored_as_its_hash() -> None:
    store = InMemoryKeyStore()
    keys = _service(store, Ticker())
    key, secret = await keys.create(name="ci", scopes=READ, tenant="acme")
    assert secret.startswith(KEY_PREFIX)
    [stored] = await store.list()
    assert stored.hash == hash_key(secret) != secret
    assert secret not in repr(stored)
    assert stored.prefix == secret[:10]
    principal = await keys.principal(secret)
    assert principal is not None
    assert (principal.key_id, principal.name, principal.tenant) == (key.id, "ci", "acme")
    assert await keys.principal(secret + "x") is None


async def test_a_verdict_is_reused_for_half_a_second_then_asked_again() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker)
    _, secret = await keys.create(name="ci", scopes=READ, tenant="default")
    for _ in range(50):
        assert await keys.principal(secret) is not None
        assert await keys.principal("tf_wrong") is None
    assert store.lookups == 2
    ticker.now += 0.5
    await keys.principal(secret)
    await keys.principal("tf_wrong")
    assert store.lookups == 4


async def test_a_revoked_key_is_refused_once_its_verdict_expires() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker)
    key, secret = await keys.create(name="ci", scopes=READ, tenant="default")
    assert await keys.principal(secret) is not None
    await keys.revoke(key.id)
    ticker.now += 0.49
    assert await keys.principal(secret) is not None  # the cached verdict, still fresh
    ticker.now += 0.01
    assert await keys.principal(secret) is None
    [listed] = await keys.list()
    assert listed.revoked_at is not None


async def test_a_session_is_checked_against_its_key_looked_up_by_id_each_half_second() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker)
    key, secret = await keys.create(name="alice", scopes=READ, tenant="acme")
    principal = await keys.principal(secret)
    assert principal is not None
    session = keys.open_session(secret, principal)
    assert secret.removeprefix(KEY_PREFIX) not in session
    for _ in range(3):
        assert await keys.session_principal(session) == key.principal
    assert store.lookups_by_id == 1
    await keys.revoke(key.id)
    assert await keys.session_principal(session) == key.principal  # the cached row, for now
    ticker.now += 0.5
    assert await keys.session_principal(session) is None
    assert store.lookups_by_id == 2
    with pytest.raises(ValueError, match="principal"):
        keys.open_session(secret, Principal(key_id=None, name="x", scopes=READ, tenant="t"))


async def test_revoking_an_unknown_key_says_so() -> None:
    with pytest.raises(KeyNotFound):
        await _service(InMemoryKeyStore(), Ticker()).revoke(uuid.uuid4())


async def test_a_flood_of_wrong_keys_keeps_the_cache_bounded() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker, max_cached=100)
    _, secret = await keys.create(name="ci", scopes=READ, tenant="default")
    for i in range(1000):
        assert await keys.principal(f"tf_wrong{i}") is None
    assert keys.cache_size == 100
    assert store.lookups == 1000
    assert await keys.principal(secret) is not None  # a real key still gets in


async def test_checks_apply_once_a_key_exists_and_stay_after_it_is_revoked() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker)
    assert not await keys.enforced()
    assert not await keys.enforced()
    assert store.existence_checks == 1  # asked again at most every half second
    key, _ = await keys.create(name="ci", scopes=READ, tenant="default")
    assert not await keys.enforced()  # another process's key: seen within half a second
    ticker.now += 0.5
    assert await keys.enforced()
    await keys.revoke(key.id)
    ticker.now += 10
    assert await keys.enforced()


async def test_an_open_api_is_known_open_only_while_its_last_check_is_fresh() -> None:
    store, ticker = CountingStore(), Ticker()
    keys = _service(store, ticker)
    assert not keys.surely_open  # never checked: the request's check must ask
    assert not await keys.enforced()
    assert keys.surely_open  # answered without a coroutine for half a second
    await keys.create(name="ci", scopes=READ, tenant="default")
    assert keys.surely_open  # as enforced() would still answer, until the check expires
    ticker.now += 0.5
    assert not keys.surely_open
    assert await keys.enforced()
    assert not keys.surely_open
    assert keys.surely_enforced


class HeldStore(CountingStore):
    """Its lookups wait for ``release``, as a query in flight does; ``fail`` makes them raise."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def _held(self) -> None:
        await self.release.wait()
        if self.fail:
            raise StoreUnavailable("task store unavailable: down")

    async def find_by_hash(self, digest: str):  # type: ignore[no-untyped-def]
        found = await super().find_by_hash(digest)  # counted, then held
        await self._held()
        return found

    async def find_by_id(self, key_id: uuid.UUID):  # type: ignore[no-untyped-def]
        found = await super().find_by_id(key_id)  # counted, then held
        await self._held()
        return found

    async def any_exist(self) -> bool:
        exist = await super().any_exist()
        await self._held()
        return exist


async def _in_flight(store: HeldStore, calls: list[Awaitable[object]]) -> list[object]:
    """Runs ``calls`` at once while the store holds its answers; answers their results."""
    store.release.clear()
    tasks = [asyncio.ensure_future(call) for call in calls]
    for _ in range(5):
        await asyncio.sleep(0)  # every call has reached the store, or returned
    store.release.set()
    return list(await asyncio.gather(*tasks))


async def test_an_expired_verdict_is_asked_for_once_however_many_requests_wait() -> None:
    store, ticker = HeldStore(), Ticker()
    keys = _service(store, ticker)
    key, secret = await keys.create(name="ci", scopes=READ, tenant="default")
    principal = await keys.principal(secret)
    assert store.lookups == 1
    await keys.revoke(key.id)
    ticker.now += 0.5
    # One request asks; the 31 others reuse the verdict until the answer comes.
    answers = await _in_flight(store, [keys.principal(secret) for _ in range(32)])
    assert store.lookups == 2
    assert answers.count(None) == 1
    assert answers.count(principal) == 31
    assert await keys.principal(secret) is None  # the answer, cached


async def test_whether_keys_exist_is_asked_once_at_each_expiry() -> None:
    store, ticker = HeldStore(), Ticker()
    keys = _service(store, ticker)
    assert not await keys.enforced()
    await keys.create(name="ci", scopes=READ, tenant="default")
    ticker.now += 0.5
    answers = await _in_flight(store, [keys.enforced() for _ in range(32)])
    assert store.existence_checks == 2
    assert answers.count(True) == 1
    assert await keys.enforced()


async def test_a_session_key_is_looked_up_once_at_each_expiry() -> None:
    store, ticker = HeldStore(), Ticker()
    keys = _service(store, ticker)
    key, secret = await keys.create(name="alice", scopes=READ, tenant="acme")
    principal = await keys.principal(secret)
    assert principal is not None
    session = keys.open_session(secret, principal)
    assert await keys.session_principal(session) == key.principal
    ticker.now += 0.5
    await _in_flight(store, [keys.session_principal(session) for _ in range(8)])
    assert store.lookups_by_id == 2


async def test_a_failed_lookup_leaves_the_next_request_to_ask_again() -> None:
    store, ticker = HeldStore(), Ticker()
    keys = _service(store, ticker)
    _, secret = await keys.create(name="ci", scopes=READ, tenant="default")
    assert await keys.principal(secret) is not None
    assert await keys.enforced()
    ticker.now += 0.5
    store.fail = True
    with pytest.raises(StoreUnavailable):
        await keys.principal(secret)
    store.fail = False
    assert await keys.principal(secret) is not None
    assert store.lookups == 3  # the failed one, then the next request's
    fresh = _service(store, ticker)
    store.fail = True
    with pytest.raises(StoreUnavailable):
        await fresh.enforced()
    store.fail = False
    assert await fresh.enforced()  # asked again at once, not half a second later


def test_admin_includes_the_other_scopes() -> None:
    admin = parse_scopes("admin")
    reader = parse_scopes(" read ")

    def allows(scopes: frozenset[Scope], scope: Scope) -> bool:
        return Principal(key_id=None, name="n", scopes=scopes, tenant="t").allows(scope)

    assert all(allows(admin, scope) for scope in Scope)
    assert allows(reader, Scope.READ)
    assert not allows(reader, Scope.SUBMIT)
    assert not allows(reader, Scope.ADMIN)


@pytest.mark.parametrize("text", ["", " , ", "read,write", "READ"])
def test_scopes_name_a_wrong_one(text: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        parse_scopes(text)


@pytest.mark.parametrize(
    ("name", "tenant"), [("", "t"), ("n", ""), ("x" * 101, "t"), ("a\nb", "t")]
)
async def test_a_key_needs_a_printable_name_and_tenant(name: str, tenant: str) -> None:
    with pytest.raises(ValueError, match="printable"):
        await _service(InMemoryKeyStore(), Ticker()).create(name=name, scopes=READ, tenant=tenant)
