"""The ``KeyStore`` port on SQL, for PostgreSQL and SQLite alike (decision 30)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from taskflow.adapters.sql.engine import store_errors
from taskflow.adapters.sql.schema import api_keys
from taskflow.domain.keys import ApiKey, Scope


class SqlKeyStore:
    """The ``KeyStore`` port on PostgreSQL or SQLite; see ``InMemoryKeyStore``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, key: ApiKey) -> None:
        row = {
            "id": key.id,
            "name": key.name,
            "prefix": key.prefix,
            "hash": key.hash,
            "scopes": ",".join(sorted(key.scopes)),
            "tenant": key.tenant,
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }
        with store_errors():
            async with self._engine.begin() as conn:
                await conn.execute(insert(api_keys).values(row))

    async def find_by_hash(self, digest: str) -> ApiKey | None:
        return await self._find(api_keys.c.hash == digest)

    async def find_by_id(self, key_id: UUID) -> ApiKey | None:
        return await self._find(api_keys.c.id == key_id)

    async def _find(self, condition: Any) -> ApiKey | None:
        stmt = select(api_keys).where(condition)
        with store_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else _key(row)

    async def list(self) -> list[ApiKey]:
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        with store_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return [_key(row) for row in rows]

    async def revoke(self, key_id: UUID, *, now: datetime) -> ApiKey | None:
        stamp = (
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        with store_errors():
            async with self._engine.begin() as conn:
                await conn.execute(stamp)
                row = (
                    (await conn.execute(select(api_keys).where(api_keys.c.id == key_id)))
                    .mappings()
                    .first()
                )
        return None if row is None else _key(row)

    async def any_exist(self) -> bool:
        with store_errors():
            async with self._engine.connect() as conn:
                return bool((await conn.execute(select(exists(api_keys.select())))).scalar())


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        hash=row["hash"],
        scopes=frozenset(Scope(s) for s in row["scopes"].split(",")),
        tenant=row["tenant"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
