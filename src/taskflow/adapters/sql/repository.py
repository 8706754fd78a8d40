"""The task store on SQL: PostgreSQL (asyncpg) in production, SQLite (aiosqlite) for `taskflow dev`.

SQLAlchemy Core throughout: every method is one statement (or one transaction) with no ORM
session in between. "Now" is the store's clock: PostgreSQL's ``statement_timestamp()``, one
instant per statement; on SQLite, which has no clock of its own worth sharing, the ``Clock``
given to the repository.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import (
    Interval,
    Select,
    String,
    Update,
    Uuid,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from taskflow.adapters.batching import Coalescer
from taskflow.adapters.clock import SystemClock
from taskflow.adapters.sql import bulk, history
from taskflow.adapters.sql import insert as sql_insert
from taskflow.adapters.sql.bulk import SaveItem
from taskflow.adapters.sql.engine import HeldConnection, create_engine, fetch_raw, store_errors
from taskflow.adapters.sql.rows import to_row, to_task
from taskflow.adapters.sql.schema import UtcDateTime, status_in
from taskflow.adapters.sql.schema import tasks as table
from taskflow.domain.attempts import Attempt, AttemptEnd
from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    StaleTask,
    TaskNotFound,
)
from taskflow.domain.model import ACTIVE, CLAIMABLE, Lease, Task, TaskStatus
from taskflow.domain.ports import Clock, Dispatch, Renewal


class SqlTaskRepository:
    """The ``TaskRepository`` port on PostgreSQL or SQLite; see ``InMemoryTaskRepository``."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock | None = None, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        # Single statements need no BEGIN/COMMIT around them: one round trip instead of three.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock: Clock = clock or SystemClock()
        self._postgres = engine.dialect.name == "postgresql"
        # Concurrent saves (a worker finishing many tasks) share one statement and one commit.
        self._saves: Coalescer[SaveItem] = Coalescer(self._save_many)
        # The claim loop and the flushers of saves and inserts each run one statement after
        # another; a concurrent call (a batch submission, say) takes a pooled connection.
        self._claim_conn = HeldConnection(self._autocommit)
        self._save_conn = HeldConnection(self._autocommit)
        self._add_conn = HeldConnection(self._autocommit)
        self._adds: Coalescer[Task] = Coalescer(self._add_each)

    async def add(self, task: Task) -> None:
        if self._postgres:
            await self._adds.submit(task)
        else:
            await self.add_many([task])

    async def _add_each(self, tasks: Sequence[Task]) -> list[BaseException | None]:
        """Insert independent submissions together; one duplicate must not fail the others."""
        try:
            await self.add_many(tasks)
        except (DuplicateTask, asyncpg.DataError):
            return [
                await _caught(self.add_many([task]), DuplicateTask, asyncpg.DataError)
                for task in tasks
            ]
        return [None] * len(tasks)

    async def add_many(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        if self._postgres:
            # One statement on asyncpg, atomic by itself: no BEGIN/COMMIT round trips.
            rows = sql_insert.encode(tasks)
            async with self._connect(held=self._add_conn) as conn:
                with _duplicates():
                    await fetch_raw(conn, sql_insert.INSERT_SQL, [rows])
            return
        # One row is one atomic statement; only a batch needs BEGIN/COMMIT around it.
        async with self._connect(transaction=len(tasks) > 1) as conn:
            with _duplicates():
                # One prepared INSERT, executed for every row in one batch.
                await conn.execute(insert(table), [to_row(t) for t in tasks])

    async def add_idempotent(
        self, tasks: Sequence[Task], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]:
        now, _ = self._times(0.0)
        async with self._connect(transaction=True) as conn:
            with _duplicates():
                known = await history.add_keyed(
                    conn,
                    [to_row(t) for t in tasks],
                    key=key,
                    request_hash=request_hash,
                    now=now,
                    postgres=self._postgres,
                )
        if known is None:
            return list(tasks), False
        known_hash, task_ids = known
        if known_hash != request_hash:
            raise IdempotencyKeyReused()
        return await self.get_many(task_ids), True

    async def prune_idempotency_keys(self, older_than: datetime) -> int:
        async with self._connect() as conn:
            return await history.prune_keys(conn, older_than)

    async def attempts(self, task_id: UUID) -> list[Attempt]:
        async with self._connect() as conn:
            found = await history.attempts_of(conn, task_id)
        if found is None:
            raise TaskNotFound(f"no task has id {task_id}")
        return found

    async def get(self, task_id: UUID) -> Task:
        async with self._connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == task_id))).first()
        if row is None:
            raise TaskNotFound(f"no task has id {task_id}")
        return to_task(row._mapping)

    async def get_many(self, task_ids: Sequence[UUID]) -> list[Task]:
        if not task_ids:
            return []
        async with self._connect() as conn:
            result = await conn.execute(select(table).where(self._id_in(set(task_ids))))
            found = {t.id: t for t in map(to_task, result.mappings())}
        return [found[i] for i in task_ids if i in found]

    async def save(self, task: Task, *, closing: AttemptEnd | None = None) -> None:
        if self._postgres:
            await self._saves.submit((task, closing))
        else:
            await self._save_one(task, closing)

    async def _save_many(self, items: Sequence[SaveItem]) -> list[BaseException | None]:
        ids = [task.id for task, _ in items]
        if len(set(ids)) < len(ids):  # one task twice: its changes must apply in order
            return [
                await _caught(self._save_one(task, end), StaleTask, TaskNotFound)
                for task, end in items
            ]
        try:
            async with self._connect(held=self._save_conn) as conn:
                written = await bulk.save_many(conn, items)
                missed = [i for i in ids if i not in written]
                known = set()
                if missed:
                    found = await conn.execute(select(table.c.id).where(self._id_in(missed)))
                    known = {row[0] for row in found}
        except asyncpg.DataError:
            if len(items) == 1:
                raise
            # A value the store refuses fails the whole statement: write the rows one by one,
            # so only the caller whose row it is learns of it.
            outcomes: list[BaseException | None] = []
            for item in items:
                try:
                    outcomes += await self._save_many([item])
                except asyncpg.DataError as exc:
                    outcomes.append(exc)
            return outcomes
        return [None if i in written else StaleTask() if i in known else _not_found(i) for i in ids]

    async def _save_one(self, task: Task, closing: AttemptEnd | None) -> None:
        row: dict[str, Any] = to_row(task)
        del row["id"]
        if task.lease is not None:
            row["lease_expires_at"] = _keep_renewal(task.lease)
        stmt = (
            update(table)
            .where(table.c.id == task.id, table.c.version == task.version - 1)
            .values(row)
        )
        two_statements = closing is not None and not self._postgres
        async with self._connect(transaction=two_statements) as conn:
            if await history.save_closing(conn, stmt, task.id, closing, postgres=self._postgres):
                return
            exists = await conn.scalar(select(table.c.id).where(table.c.id == task.id))
        if exists is None:
            raise TaskNotFound(f"no task has id {task.id}")
        raise StaleTask()

    async def claim(
        self, task_ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> list[Task]:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return []
        # The attempt opens with the claim: one statement on PostgreSQL, one transaction on SQLite.
        rows: Sequence[Any]
        if self._postgres:
            sql, names, fixed = self._pg_claim_sql
            values = {**fixed, "ids": ids, "worker_id": worker_id}
            values["lease"] = timedelta(seconds=lease_seconds)
            async with self._connect(held=self._claim_conn) as conn:
                rows = await fetch_raw(conn, sql, [values[name] for name in names])
        else:
            now, expires_at = self._times(lease_seconds)
            stmt = _claiming(
                table.c.id.in_(ids), now, expires_at, self._fresh_tokens(ids), literal(worker_id)
            )
            async with self._connect(transaction=True) as conn:
                rows = await history.claim_logged(conn, stmt)
        claimed = {t.id: t for t in map(to_task, rows)}
        return [claimed[i] for i in ids if i in claimed]

    @functools.cached_property
    def _pg_claim_sql(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """The claim compiled once to PostgreSQL text with numbered parameters.

        The claim is the hottest statement there is: it runs straight on asyncpg (a prepared
        statement the driver caches), skipping SQLAlchemy's per-execution and per-row work.
        Returns the text, the parameter names in order, and the values compiled into it.
        """
        compiled = self._pg_claim.compile(
            dialect=self._engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        return compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params)

    @functools.cached_property
    def _pg_claim(self) -> Select[Any]:
        now = func.statement_timestamp(type_=UtcDateTime())
        return history.logged_claim(
            _claiming(
                # Placeholder values, replaced on every call; compiling needs some.
                table.c.id == any_(bindparam("ids", [], type_=ARRAY(Uuid()))),
                now,
                now + bindparam("lease", timedelta(0), type_=Interval()),
                func.gen_random_uuid(),
                bindparam("worker_id", "", type_=String()),
            )
        )

    async def renew_leases(self, leases: Mapping[UUID, UUID], *, lease_seconds: float) -> Renewal:
        if not leases:
            return Renewal(frozenset())
        now, expires_at = self._times(lease_seconds)
        # Task.renew_lease in bulk: held by the token, PROCESSING, unexpired; neither version
        # nor updated_at moves.
        stmt = (
            update(table)
            .where(
                tuple_(table.c.id, table.c.lease_token).in_(list(leases.items())),
                status_in(ACTIVE),
                table.c.lease_expires_at > now,
            )
            .values(lease_expires_at=expires_at)
            .returning(table.c.id, table.c.cancel_requested)
        )
        async with self._connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return Renewal(
            frozenset(row[0] for row in rows), frozenset(row[0] for row in rows if row[1])
        )

    async def expired(self, *, limit: int, horizon_seconds: float | None = 0.0) -> list[Task]:
        stmt = select(table).where(status_in(ACTIVE))
        if horizon_seconds is not None:
            _, horizon = self._times(horizon_seconds)
            stmt = stmt.where(table.c.lease_expires_at <= horizon)
        stmt = stmt.order_by(table.c.lease_expires_at, table.c.id).limit(limit)
        async with self._connect() as conn:
            return [to_task(m) for m in (await conn.execute(stmt)).mappings()]

    async def pending(self, *, after: UUID | None, limit: int) -> list[Dispatch]:
        columns = (table.c.id, table.c.queue, table.c.priority, table.c.run_at)
        stmt = select(*columns).where(status_in(CLAIMABLE)).order_by(table.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(table.c.id > after)
        async with self._connect() as conn:
            return [Dispatch(*row) for row in await conn.execute(stmt)]

    async def ping(self) -> None:
        async with self._connect() as conn:
            await conn.execute(text("SELECT 1"))

    @classmethod
    def connect(
        cls, url: str, *, clock: Clock | None = None, pool_size: int = 10
    ) -> SqlTaskRepository:
        """A repository on an engine of its own, which ``close`` disposes of."""
        return cls(create_engine(url, pool_size=pool_size), clock=clock, owns_engine=True)

    async def close(self) -> None:
        """Hand back the connections this repository keeps; call before disposing the engine
        (which it does itself when it made the engine)."""
        for held in (self._claim_conn, self._save_conn, self._add_conn):
            await held.close()
        if self._owns_engine:
            await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _connect(
        self, *, transaction: bool = False, held: HeldConnection | None = None
    ) -> AsyncIterator[AsyncConnection]:
        with store_errors():
            if held is not None:
                async with held.use() as conn:
                    yield conn
            elif transaction:
                async with self._engine.begin() as conn:
                    yield conn
            else:
                async with self._autocommit.connect() as conn:
                    yield conn

    def _times(self, lease_seconds: float) -> tuple[ColumnElement[datetime], ColumnElement[Any]]:
        """The store's now, and now + the lease."""
        lease = timedelta(seconds=lease_seconds)
        if self._postgres:
            now = func.statement_timestamp(type_=UtcDateTime())
            return now, now + literal(lease, Interval())
        instant = self._clock.now()
        return literal(instant, UtcDateTime()), literal(instant + lease, UtcDateTime())

    def _id_in(self, ids: Sequence[UUID] | set[UUID]) -> ColumnElement[bool]:
        if self._postgres:
            # One array parameter: the same SQL text, so one cached plan, for any batch size.
            return table.c.id == any_(literal(list(ids), ARRAY(Uuid())))
        return table.c.id.in_(ids)

    def _fresh_tokens(self, ids: Sequence[UUID]) -> ColumnElement[Any]:
        if self._postgres:
            return func.gen_random_uuid()
        # SQLite has no UUID generator: pick one per candidate row here, in the same statement.
        return case({i: literal(uuid.uuid4(), Uuid()) for i in ids}, value=table.c.id)


def _claiming(
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
        select(table.c.id)
        .where(ids, status_in(CLAIMABLE, indexed=False), table.c.run_at <= now)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    return (
        update(table)
        .where(table.c.id.in_(select(picked.c.id)))
        .values(
            status=TaskStatus.PROCESSING.value,
            attempts=table.c.attempts + 1,
            started_at=now,
            updated_at=now,
            version=table.c.version + 1,
            lease_token=tokens,
            lease_worker_id=worker_id,
            lease_expires_at=expires_at,
            cancel_requested=False,
            progress=null(),
        )
        .returning(*table.c)
    )


async def _caught(write: Awaitable[object], *errors: type[BaseException]) -> BaseException | None:
    """None when ``write`` succeeds; the error when it raises one of ``errors``."""
    try:
        await write
    except errors as exc:
        return exc
    return None


def _not_found(task_id: UUID) -> TaskNotFound:
    return TaskNotFound(f"no task has id {task_id}")


def _keep_renewal(lease: Lease) -> ColumnElement[datetime]:
    # renew_leases extends a lease without a new version, so the writer's copy may predate the
    # renewal; writing its older expiry would take the lease from a worker that heartbeats.
    expires_at = literal(lease.expires_at, UtcDateTime())
    renewed = (table.c.lease_token == lease.token) & (table.c.lease_expires_at > expires_at)
    return case((renewed, table.c.lease_expires_at), else_=expires_at)


@contextlib.contextmanager
def _duplicates() -> Iterator[None]:
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if _is_unique_violation(exc):
            raise DuplicateTask() from exc
        raise
    except asyncpg.UniqueViolationError as exc:  # a statement run on asyncpg directly
        raise DuplicateTask() from exc


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return getattr(orig, "sqlite_errorname", "") in {
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_UNIQUE",
    }
