"""The SQL store's engine: connecting, migrating, and telling an outage from a bug."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from taskflow.adapters.sql.rows import encode_json
from taskflow.adapters.sql.tls import engine_url_and_args
from taskflow.domain.errors import StoreNotMigrated, StoreUnavailable
from taskflow.domain.redaction import without_passwords

MIGRATIONS = Path(__file__).parent / "migrations"

_SQLITE_BUSY_TIMEOUT_MS = 5000
_PG_CONNECT_TIMEOUT_SECONDS = 5.0


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url``, tuned for the task store (WAL on SQLite, msgspec JSON)."""
    parsed = make_url(url)
    json_options: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": msgspec.json.decode,
    }
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, **json_options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    parsed, tls_args = engine_url_and_args(parsed)
    return create_async_engine(
        parsed,
        pool_size=pool_size,
        # A dead connection surfaces as StoreUnavailable on use; pinging every checkout would
        # cost a round trip on the hot path.
        pool_pre_ping=False,
        # Fail fast when the server is unreachable, so readiness checks answer quickly.
        connect_args={"timeout": _PG_CONNECT_TIMEOUT_SECONDS, **tls_args},
        **json_options,
    )


def _json_dumps(value: Any) -> str:
    return encode_json(value).decode()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer writes; busy_timeout makes writers queue
    # instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema; does nothing when it is there."""
    engine = create_engine(url, pool_size=1)
    try:
        with store_errors():
            async with engine.begin() as connection:
                # Alembic is synchronous: hand it our connection rather than let env.py start
                # an event loop of its own, which would fail inside the running one.
                await connection.run_sync(_upgrade_to_head, url)
    finally:
        await engine.dispose()


def _upgrade_to_head(connection: Connection, url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


_UNREACHABLE = (
    OSError,
    TimeoutError,
    sa_exc.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a protocol left mid-operation by a session the server ended
)
# SQLSTATE classes that mean "this database cannot be used now", whatever the statement:
# connection exception, authorization, unknown database, insufficient resources, shutdown.
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57P")
# A table or a column this code uses is not there: the database is behind its migrations.
_NOT_MIGRATED_SQLSTATES = ("42P01", "42703")


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn every way of not reaching the database into StoreUnavailable, and a schema older
    than this code's into StoreNotMigrated."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if _sqlstate(exc.orig).startswith(_NOT_MIGRATED_SQLSTATES):
            raise StoreNotMigrated(_not_migrated_message(exc.orig or exc)) from exc
        if not _is_unavailable(exc):
            raise
        raise StoreUnavailable(_unavailable_message(exc.orig or exc)) from exc
    except _UNREACHABLE as exc:
        raise StoreUnavailable(_unavailable_message(exc)) from exc
    except asyncpg.PostgresError as exc:  # raised by statements run on asyncpg directly
        if _sqlstate(exc).startswith(_NOT_MIGRATED_SQLSTATES):
            raise StoreNotMigrated(_not_migrated_message(exc)) from exc
        if not _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATES):
            raise
        raise StoreUnavailable(_unavailable_message(exc)) from exc


def _sqlstate(error: BaseException | None) -> str:
    return str(getattr(error, "sqlstate", "") or "")


def _is_unavailable(exc: sa_exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    return _sqlstate(exc.orig).startswith(_UNAVAILABLE_SQLSTATES)


def _first_line(error: BaseException) -> str:
    # The driver's own exception, when the DB-API layer wraps it, names the cause best.
    lines = str(error.__cause__ or error).strip().splitlines()
    return without_passwords(lines[0])[:120] if lines else ""


def _unavailable_message(error: BaseException) -> str:
    root = error.__cause__ or error
    detail = _first_line(error)
    return f"task store unavailable: {type(root).__name__}{f': {detail}' if detail else ''}"


def _not_migrated_message(error: BaseException) -> str:
    return (
        f"the database's schema is older than this taskflow ({_first_line(error)}): "
        "run `taskflow migrate`"
    )


class HeldConnection:
    """A pooled connection kept checked out from one call to the next.

    For a caller that runs one statement after another on the hot path (the claim loop, a
    group commit's flusher): it spares the pool's checkout, reset and check-in, each a greenlet
    switch in SQLAlchemy's asyncio layer, on every statement. A call made while the connection
    is in use takes a pooled one instead; a connection that died is replaced on the next call.
    ``close()`` hands it back to the pool; the owner calls it before disposing of the engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._busy = False

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[AsyncConnection]:
        if self._busy:
            async with self._engine.connect() as conn:
                yield conn
            return
        self._busy = True
        try:
            stale = self._conn
            if stale is not None and (stale.invalidated or stale.closed):
                self._conn = None
                await stale.close()
            if self._conn is None:
                self._conn = await self._engine.connect().start()
            conn = self._conn
            try:
                yield conn
            except BaseException:
                # A statement cut short (an error, a cancellation) may leave the session in
                # any state: hand the connection back to the pool, which resets or drops it.
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.close()
                raise
        finally:
            self._busy = False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
