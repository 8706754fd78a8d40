"""Alembic environment for the task store, PostgreSQL or SQLite, async drivers.

``taskflow.adapters.sql.migrate`` passes an open connection in ``config.attributes``; the
``alembic`` command line (with ``sqlalchemy.url`` set) gets an engine of its own.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, make_url, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from taskflow.adapters.sql.schema import metadata
from taskflow.adapters.sql.tls import engine_url_and_args

# Any fixed signed 64-bit number will do; it only has to be the same for every migrator.
_PG_MIGRATION_LOCK = 0x7461736B666C6F77  # "taskflow"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes migrating at once: the second waits, then finds nothing to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    parsed, tls_args = engine_url_and_args(make_url(url))
    engine = create_async_engine(parsed, poolclass=pool.NullPool, connect_args=tls_args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (taskflow.adapters.sql.migrate does it for you)")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_own_engine(_url()))


# Alembic runs this file as a script. Imported as a package module (by a tool that walks the
# package), it must do nothing: there is no migration context then.
if not __name__.startswith("taskflow."):
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
