"""The ``KeyStore`` port in memory: for tests and the in-memory repository."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from uuid import UUID

from taskflow.domain.keys import ApiKey


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[UUID, ApiKey] = {}

    async def create(self, key: ApiKey) -> None:
        if key.id in self._keys or any(k.hash == key.hash for k in self._keys.values()):
            raise ValueError("a key with this id or hash exists already")
        self._keys[key.id] = key

    async def find_by_hash(self, digest: str) -> ApiKey | None:
        return next((k for k in self._keys.values() if k.hash == digest), None)

    async def find_by_id(self, key_id: UUID) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, str(k.id)))

    async def revoke(self, key_id: UUID, *, now: datetime) -> ApiKey | None:
        key = self._keys.get(key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            key = self._keys[key_id] = replace(key, revoked_at=now)
        return key

    async def any_exist(self) -> bool:
        return bool(self._keys)
