"""API keys: made, listed and revoked by operators, checked on every protected request.

Checks are cached in the process: a key's verdict (its principal, or "no such key") is reused
for ``ttl`` seconds at most, so a revocation reaches every API process within that, and a
flood of wrong keys costs one lookup per key per ``ttl``. Whether any key exists at all (until
then the API is open) is asked again at most every ``ttl`` seconds until one does; keys are
revoked, never deleted, so from then on it stays true.

When a cached answer expires, one caller asks the store again and the others keep the last
answer until it has the new one. Under load every request in flight would otherwise send the
same query at each expiry: dozens of queries where one does.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Hashable
from enum import Enum
from typing import TypeVar
from uuid import UUID

from taskflow.domain.errors import KeyNotFound
from taskflow.domain.keys import (
    DISPLAY_PREFIX_LENGTH,
    KEY_PREFIX,
    ApiKey,
    Principal,
    Scope,
    check_key_fields,
    hash_key,
)
from taskflow.domain.ports import Clock, KeyStore
from taskflow.domain.sessions import SESSION_SECONDS, make_session, read_session, session_matches

#: How long a verdict on a key is reused (decision 30).
CHECK_TTL_SECONDS = 0.5
#: The most verdicts kept; past it the oldest goes first.
MAX_CACHED_VERDICTS = 10_000


class Unknown(Enum):
    UNKNOWN = "unknown"


#: ``KeyService.cached``: no fresh verdict on this key.
UNKNOWN = Unknown.UNKNOWN
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class KeyService:
    """``token`` makes a key's random part; ``monotonic`` times the cache (seconds)."""

    def __init__(
        self,
        *,
        store: KeyStore,
        clock: Clock,
        new_id: Callable[[], UUID],
        token: Callable[[], str],
        monotonic: Callable[[], float],
        ttl: float = CHECK_TTL_SECONDS,
        max_cached: int = MAX_CACHED_VERDICTS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._token = token
        self._monotonic = monotonic
        self._ttl = ttl
        self._max_cached = max_cached
        self._verdicts: dict[str, tuple[float, Principal | None]] = {}
        self._by_id: dict[UUID, tuple[float, ApiKey | None]] = {}  # active keys, for sessions
        self._keys_exist = False
        self._keys_checked_until = float("-inf")

    async def create(
        self, *, name: str, scopes: frozenset[Scope], tenant: str
    ) -> tuple[ApiKey, str]:
        """A new key, and the key itself: the only time anyone sees it."""
        check_key_fields(name, tenant)
        if not scopes:
            raise ValueError("name at least one scope: submit, read or admin")
        secret = KEY_PREFIX + self._token()
        key = ApiKey(
            id=self._new_id(),
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            hash=hash_key(secret),
            scopes=scopes,
            tenant=tenant,
            created_at=self._clock.now(),
        )
        await self._store.create(key)
        return key, secret

    async def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        """The keys, oldest first: ``tenant``'s, or every tenant's (None)."""
        every = await self._store.list()
        return every if tenant is None else [key for key in every if key.tenant == tenant]

    async def revoke(self, key_id: UUID, *, tenant: str | None = None) -> ApiKey:
        """The key, revoked (again is fine); ``KeyNotFound`` for an unknown id, and for
        another tenant's key when ``tenant`` is given."""
        if tenant is not None:
            stored = await self._store.find_by_id(key_id)
            if stored is None or stored.tenant != tenant:
                raise KeyNotFound()
        key = await self._store.revoke(key_id, now=self._clock.now())
        if key is None:
            raise KeyNotFound()
        return key

    @property
    def surely_enforced(self) -> bool:
        """True once a key is known to exist (for good); False: ask ``enforced``."""
        return self._keys_exist

    @property
    def surely_open(self) -> bool:
        """True while the latest check found no key: ``enforced`` would answer False at once,
        so a request's check may say so without a coroutine."""
        return not self._keys_exist and self._monotonic() < self._keys_checked_until

    async def enforced(self) -> bool:
        """Whether checks apply: true once any key exists, revoked ones included."""
        if self._keys_exist:
            return True
        now = self._monotonic()
        if now >= self._keys_checked_until:
            self._keys_checked_until = now + self._ttl  # the others keep False meanwhile
            try:
                self._keys_exist = await self._store.any_exist()
            except BaseException:
                self._keys_checked_until = now  # the next caller asks again
                raise
        return self._keys_exist

    def cached(self, secret: str) -> Principal | Unknown | None:
        """The fresh verdict on ``secret`` (as ``principal`` would answer), else ``UNKNOWN``:
        the check of every request asks this first, without a coroutine."""
        # Keyed by what was presented, not by its hash: a hit then costs no SHA-256.
        cached = self._verdicts.get(secret)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        return UNKNOWN

    async def principal(self, secret: str) -> Principal | None:
        """Who presents ``secret``; None for a wrong or revoked key."""
        return await self._looked_up(self._verdicts, secret, self._principal)

    async def _principal(self, secret: str) -> Principal | None:
        digest = hash_key(secret)
        key = await self._store.find_by_hash(digest)
        # The lookup found it by its hash already; comparing again in constant time costs
        # little and keeps the answer from depending on how the store matched.
        if key is not None and key.revoked_at is None and hmac.compare_digest(key.hash, digest):
            return key.principal
        return None

    def open_session(self, secret: str, principal: Principal) -> str:
        """A dashboard session (decision 35) for ``secret``, whose ``principal`` was checked."""
        if principal.key_id is None:
            raise ValueError("only a key's principal can open a session")
        expires = int(self._clock.now().timestamp()) + SESSION_SECONDS
        return make_session(principal.key_id, hash_key(secret), expires)

    async def session_principal(self, text: str) -> Principal | None:
        """Whose dashboard session ``text`` is; None when it is malformed, forged, expired, or
        its key is revoked (seen within ``ttl`` seconds, as for a key)."""
        session = read_session(text)
        if session is None or session.expires <= self._clock.now().timestamp():
            return None
        key = await self._active_key(session.key_id)
        if key is None or not session_matches(session, key.hash):
            return None
        return key.principal

    async def _active_key(self, key_id: UUID) -> ApiKey | None:
        return await self._looked_up(self._by_id, key_id, self._find_active)

    async def _find_active(self, key_id: UUID) -> ApiKey | None:
        key = await self._store.find_by_id(key_id)
        return key if key is not None and key.revoked_at is None else None

    async def _looked_up(
        self,
        verdicts: dict[_K, tuple[float, _V]],
        key: _K,
        look_up: Callable[[_K], Awaitable[_V]],
    ) -> _V:
        """The verdict on ``key``: the cached one while fresh, else ``look_up``'s, cached for
        ``ttl`` from when it was asked (a revocation is seen within ``ttl`` and the lookup)."""
        now = self._monotonic()
        cached = verdicts.get(key)
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            # Expired: this caller asks; the others reuse this verdict until it has the answer.
            self._remember(verdicts, key, now + self._ttl, cached[1])
        try:
            verdict = await look_up(key)
        except BaseException:
            if cached is not None:
                self._remember(verdicts, key, now, cached[1])  # expired: the next caller asks
            raise
        self._remember(verdicts, key, now + self._ttl, verdict)
        return verdict

    def _remember(
        self, verdicts: dict[_K, tuple[float, _V]], key: _K, until: float, verdict: _V
    ) -> None:
        verdicts.pop(key, None)  # so that insertion order stays the order of expiry
        while len(verdicts) >= self._max_cached:
            del verdicts[next(iter(verdicts))]
        verdicts[key] = (until, verdict)

    @property
    def cache_size(self) -> int:
        """How many verdicts are kept now (tests bound it)."""
        return len(self._verdicts)
