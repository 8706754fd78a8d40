"""Every difference between PostgreSQL and SQLite, chosen once, when a repository is made.

``SqlTaskRepository`` is written once, against ``Dialect``; ``dialect_for`` picks one by the
engine's dialect name (decision 4).

- PostgreSQL: "now" is ``statement_timestamp()``, one instant per statement. The hot writes
  (insert, group-committed save, claim) are each one statement on asyncpg (``postgres``),
  history rows included, on a connection held from one call to the next (decision 10).
- SQLite: "now" is the ``Clock`` given, as SQLite has no clock worth sharing. Each write is a
  transaction of SQLAlchemy statements, since SQLite has no data-modifying CTEs; lease tokens
  are drawn here, since it has no UUID generator.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

import asyncpg
from sqlalchemy import (
    Interval,
    String,
    Update,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.sql import history, postgres
from taskflow.adapters.sql.engine import HeldConnection
from taskflow.adapters.sql.rows import Row, columns
from taskflow.adapters.sql.schema import UtcDateTime, keeping_renewal, status_in, tasks
from taskflow.domain.attempts import AttemptEnd
from taskflow.domain.model import CLAIMABLE, TaskStatus
from taskflow.domain.ports import Clock
from taskflow.domain.queries import MetadataEquals

#: The writes a store makes over and over: each may keep a connection of its own.
Write = Literal["insert", "save", "claim"]
#: Columns of the tasks table to read (a tuple: the key of a compiled statement).
Columns = tuple[ColumnElement[Any], ...]
FULL: Columns = tuple(tasks.c)
#: What a worker under a flow limit reads of each task it pops (`repository.popped`).
POPPED: Columns = (
    tasks.c.id,
    tasks.c.type,
    tasks.c.queue,
    tasks.c.priority,
    tasks.c.status,
    tasks.c.attempts,
)


class Dialect(Protocol):
    """What the repository asks of a database; one line of semantics each."""

    #: What a write raises for a value the store refuses, failing every row written with it.
    refusals: tuple[type[Exception], ...]

    def times(
        self, lease_seconds: float
    ) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]: ...  # now, now + lease

    def id_in(self, ids: Collection[UUID]) -> ColumnElement[bool]: ...

    @property
    def insert_on_conflict(self) -> history.InsertOnConflict: ...  # INSERT … ON CONFLICT

    def is_unique_violation(self, exc: sa_exc.IntegrityError) -> bool: ...

    def writing(
        self, write: Write
    ) -> AbstractAsyncContextManager[AsyncConnection]: ...  # the connection ``write`` runs on

    async def insert(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> None:
        """Store the rows, all or none (``document``: ``rows.encode`` of them)."""

    async def save(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> set[UUID]:
        """Write each change whose version still matches, with the attempt it ends; the ids."""

    async def claim(
        self, conn: AsyncConnection, ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> Sequence[Any]:
        """``claiming`` the ids; the rows claimed."""

    async def read(
        self, conn: AsyncConnection, ids: Collection[UUID], columns: Columns = FULL
    ) -> Sequence[Any]:
        """The ``columns`` of the rows of those ``ids`` that exist, in any order."""

    async def warm(self, writes: Collection[Write]) -> None:
        """Open the connections ``writes`` run on and prepare their statements, writing nothing."""

    async def close(self) -> None: ...  # hands back the connections it holds

    def metadata_equals(self, condition: MetadataEquals) -> ColumnElement[bool]:
        """The task's top-level metadata ``key`` holds one of ``condition.values()``."""
        ...


def dialect_for(engine: AsyncEngine, clock: Clock) -> Dialect:
    if engine.dialect.name == "postgresql":
        return PostgresDialect(engine)
    return SqliteDialect(engine, clock)


class PostgresDialect:
    refusals: tuple[type[Exception], ...] = (asyncpg.DataError,)
    insert_on_conflict = staticmethod(postgresql.insert)

    def __init__(self, engine: AsyncEngine) -> None:
        # One statement needs no BEGIN/COMMIT around it: one round trip instead of three.
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._held = {write: HeldConnection(autocommit) for write in ("insert", "save", "claim")}
        self._reads: dict[Columns, postgres.Compiled] = {}

    def times(self, lease_seconds: float) -> tuple[ColumnElement[datetime], ColumnElement[Any]]:
        now = func.statement_timestamp(type_=UtcDateTime())
        return now, now + literal(timedelta(seconds=lease_seconds), Interval())

    def id_in(self, ids: Collection[UUID]) -> ColumnElement[bool]:
        # One array parameter: the same SQL text, so one cached plan, for any batch size.
        return tasks.c.id == any_(literal(list(ids), ARRAY(Uuid())))

    @staticmethod
    def is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
        return getattr(exc.orig, "sqlstate", None) == "23505"

    def writing(self, write: Write) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._held[write].use()

    async def insert(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> None:
        await postgres.insert(conn, document)

    async def save(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> set[UUID]:
        return await postgres.save(conn, document, [row.id for row in rows])

    async def claim(
        self, conn: AsyncConnection, ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> Sequence[Any]:
        lease = timedelta(seconds=lease_seconds)
        return await self._claim.fetch(conn, ids=list(ids), worker_id=worker_id, lease=lease)

    async def read(
        self, conn: AsyncConnection, ids: Collection[UUID], columns: Columns = FULL
    ) -> Sequence[Any]:
        # Raw, like the claim: a worker under a flow limit reads every batch it pops.
        compiled = self._reads.get(columns)
        if compiled is None:
            compiled = self._reads[columns] = postgres.Compiled.of(
                select(*columns).where(
                    tasks.c.id == any_(bindparam("ids", [], type_=ARRAY(Uuid())))
                )
            )
        return await compiled.fetch(conn, ids=list(ids))

    async def warm(self, writes: Collection[Write]) -> None:
        # A process's first save used to wait for a new connection and the statement's prepare
        # (about 15 ms: a task handed back at shutdown started that much after its run_at).
        for write in writes:
            async with self.writing(write) as conn:
                if write == "insert":
                    await self.insert(conn, [], "[]")
                elif write == "save":
                    await self.save(conn, [], "[]")
                else:
                    await self.claim(conn, [], worker_id="", lease_seconds=1.0)

    @functools.cached_property
    def _claim(self) -> postgres.Compiled:
        """The hottest statement there is: built and compiled once per repository."""
        now = func.statement_timestamp(type_=UtcDateTime())
        claim = claiming(
            # Placeholder values, replaced on every call; compiling needs some.
            tasks.c.id == any_(bindparam("ids", [], type_=ARRAY(Uuid()))),
            now,
            now + bindparam("lease", timedelta(0), type_=Interval()),
            func.gen_random_uuid(),
            bindparam("worker_id", "", type_=String()),
        )
        return postgres.Compiled.of(claim)

    async def close(self) -> None:
        for held in self._held.values():
            await held.close()

    def metadata_equals(self, condition: MetadataEquals) -> ColumnElement[bool]:
        # Containment, which the GIN index (jsonb_path_ops) on metadata serves; for scalars
        # it is JSON equality (42 @> 42.0, "42" not @> 42).
        document = type_coerce(tasks.c.metadata, JSONB())
        return or_(
            *(document.contains(literal({condition.key: v}, JSONB())) for v in condition.values())
        )


class SqliteDialect:
    refusals: tuple[type[Exception], ...] = ()
    insert_on_conflict = staticmethod(sqlite.insert)

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def times(self, lease_seconds: float) -> tuple[ColumnElement[datetime], ColumnElement[Any]]:
        instant = self._clock.now()
        later = instant + timedelta(seconds=lease_seconds)
        return literal(instant, UtcDateTime()), literal(later, UtcDateTime())

    def id_in(self, ids: Collection[UUID]) -> ColumnElement[bool]:
        return tasks.c.id.in_(ids)

    def is_unique_violation(self, exc: sa_exc.IntegrityError) -> bool:
        return getattr(exc.orig, "sqlite_errorname", "") in {
            "SQLITE_CONSTRAINT_PRIMARYKEY",
            "SQLITE_CONSTRAINT_UNIQUE",
        }

    def writing(self, write: Write) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._engine.begin()

    async def insert(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> None:
        # One prepared INSERT, executed for every row in one batch.
        await conn.execute(insert(tasks), [columns(row) for row in rows])

    async def save(self, conn: AsyncConnection, rows: Sequence[Row], document: str) -> set[UUID]:
        written = set()
        for row in rows:
            values = columns(row)
            del values["id"]
            if row.lease_expires_at is not None:
                values["lease_expires_at"] = keeping_renewal(
                    literal(row.lease_token, Uuid()), literal(row.lease_expires_at, UtcDateTime())
                )
            stmt = update(tasks).where(tasks.c.id == row.id, tasks.c.version == row.version - 1)
            if (await conn.execute(stmt.values(values))).rowcount != 1:
                continue
            written.add(row.id)
            if isinstance(row.closing, AttemptEnd):
                await history.end_attempt(conn, row.id, row.closing)
        return written

    async def claim(
        self, conn: AsyncConnection, ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> Sequence[Any]:
        now, expires_at = self.times(lease_seconds)
        # No UUID generator in SQLite: a token per candidate row, picked in the same statement.
        tokens = case({i: literal(uuid.uuid4(), Uuid()) for i in ids}, value=tasks.c.id)
        stmt = claiming(tasks.c.id.in_(ids), now, expires_at, tokens, literal(worker_id))
        return await history.claimed(conn, stmt)

    async def read(
        self, conn: AsyncConnection, ids: Collection[UUID], columns: Columns = FULL
    ) -> Sequence[Any]:
        return list((await conn.execute(select(*columns).where(tasks.c.id.in_(ids)))).mappings())

    async def warm(self, writes: Collection[Write]) -> None:
        return None  # a file on this host: nothing to open ahead

    async def close(self) -> None:
        return None

    def metadata_equals(self, condition: MetadataEquals) -> ColumnElement[bool]:
        # json_each rather than a JSON path: any key, quotes and dots included, needs no escape.
        each = func.json_each(tasks.c.metadata).table_valued("key", "value", "type")
        typed = or_(*(_sqlite_json_is(each.c.type, each.c.value, v) for v in condition.values()))
        member = select(literal(1)).select_from(each).where(each.c.key == condition.key, typed)
        return exists(member)


def _sqlite_json_is(kind: ColumnElement[Any], value: ColumnElement[Any], want: Any) -> Any:
    """json_each's ``type`` and ``value`` of a member equal to the JSON scalar ``want``."""
    if want is None:
        return kind == "null"
    if isinstance(want, bool):
        return kind == ("true" if want else "false")
    if isinstance(want, str):
        return and_(kind == "text", value == want)
    return and_(kind.in_(["integer", "real"]), value == want)


def claiming(
    ids: ColumnElement[bool],
    now: ColumnElement[datetime],
    expires_at: ColumnElement[Any],
    tokens: ColumnElement[Any],
    worker_id: ColumnElement[Any],
) -> Update:
    """The claim (Task.claim in bulk): each PENDING task among ``ids`` due by the store's clock.

    SKIP LOCKED: waiting for a row another writer holds could deadlock two claimers that lock
    overlapping batches in different orders. A skipped task that is still PENDING goes back to
    the queue (ExecutionService re-dispatches what it could not claim). SQLite ignores the
    clause; its writers are serialised anyway.
    """
    picked = (
        select(tasks.c.id)
        .where(ids, status_in(CLAIMABLE, indexed=False), tasks.c.run_at <= now)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    return (
        update(tasks)
        .where(tasks.c.id.in_(select(picked.c.id)))
        .values(
            status=TaskStatus.PROCESSING.value,
            attempts=tasks.c.attempts + 1,
            started_at=now,
            updated_at=now,
            version=tasks.c.version + 1,
            lease_token=tokens,
            lease_worker_id=worker_id,
            lease_expires_at=expires_at,
            cancel_requested=False,
            progress=null(),
        )
        .returning(*tasks.c)
    )
