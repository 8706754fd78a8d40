"""The ``TaskRepository`` port on SQL, written once for PostgreSQL and SQLite.

SQLAlchemy Core throughout: every method is one statement (or one transaction) with no ORM
session in between. What differs between the two databases is the ``Dialect`` chosen when
the repository is made: how "now" is read (the store's clock), and how the hot writes run.
Concurrent adds and saves are group-committed (decision 9): they share one write.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from taskflow.adapters.batching import Coalescer
from taskflow.adapters.clock import SystemClock
from taskflow.adapters.sql import changelog, history, listing, retention
from taskflow.adapters.sql.callbacks import SqlCallbackStore
from taskflow.adapters.sql.dialect import POPPED, Dialect, Write, dialect_for
from taskflow.adapters.sql.engine import create_engine, store_errors
from taskflow.adapters.sql.keys import SqlKeyStore
from taskflow.adapters.sql.rows import changed_row, encode, new_row, to_popped, to_task
from taskflow.adapters.sql.schema import status_in
from taskflow.adapters.sql.schema import tasks as table
from taskflow.domain.attempts import Attempt, AttemptEnd
from taskflow.domain.changes import TaskChange
from taskflow.domain.errors import (
    DuplicateTask,
    IdempotencyKeyReused,
    StaleTask,
    TaskNotFound,
    UnstorableValue,
)
from taskflow.domain.flow import Popped
from taskflow.domain.model import ACTIVE, CLAIMABLE, Task, TaskStatus
from taskflow.domain.ports import Clock, Dispatch, Renewal
from taskflow.domain.queries import Position, TaskCount, TaskQuery
from taskflow.domain.retention import Cutoffs
from taskflow.domain.throughput import MINUTE, MinuteCount

SaveItem = tuple[Task, AttemptEnd | None]
Outcomes = list[BaseException | None]


class SqlTaskRepository:
    """The ``TaskRepository`` port on PostgreSQL or SQLite; see ``InMemoryTaskRepository``.

    A payload, metadata or result holding U+0000, which PostgreSQL cannot keep, is refused on
    both with ``UnstorableValue``; in messages it is replaced (see ``taskflow.domain.unstorable``).
    """

    def __init__(
        self, engine: AsyncEngine, *, clock: Clock | None = None, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        # Single statements need no BEGIN/COMMIT around them: one round trip instead of three.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._dialect: Dialect = dialect_for(engine, clock or SystemClock())
        # What a group-committed write fails with for one caller's task, not for the others'.
        refused: tuple[type[Exception], ...] = (UnstorableValue, *self._dialect.refusals)
        self._own_save_errors: tuple[type[Exception], ...] = refused
        self._own_add_errors: tuple[type[Exception], ...] = (DuplicateTask, *refused)
        self._adds: Coalescer[Task] = Coalescer(self._add_each)
        self._saves: Coalescer[SaveItem] = Coalescer(self._save_many)
        self._turns = retention.turns_for(self._autocommit)

    async def add(self, task: Task) -> None:
        await self._adds.submit(task)

    async def _add_each(self, tasks: Sequence[Task]) -> Outcomes:
        """Insert independent submissions together; one refused must not fail the others."""
        try:
            await self.add_many(tasks)
        except self._own_add_errors as exc:
            if len(tasks) == 1:
                return [exc]
            return [(await self._add_each([task]))[0] for task in tasks]
        return [None] * len(tasks)

    async def add_many(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        rows = [new_row(task) for task in tasks]
        document = encode(rows)
        async with self._writing("insert") as conn:
            with self._duplicates():
                await self._dialect.insert(conn, rows, document)

    async def add_idempotent(
        self, tasks: Sequence[Task], *, key: str, request_hash: str
    ) -> tuple[list[Task], bool]:
        rows = [new_row(task) for task in tasks]
        encode(rows)  # refuses what the store cannot keep, before anything is written
        now, _ = self._dialect.times(0.0)
        async with self._connect(transaction=True) as conn:
            with self._duplicates():
                known = await history.add_keyed(
                    conn,
                    rows,
                    key=key,
                    request_hash=request_hash,
                    now=now,
                    insert_on_conflict=self._dialect.insert_on_conflict,
                )
        if known is None:
            return list(tasks), False
        known_hash, task_ids = known
        if known_hash != request_hash:
            raise IdempotencyKeyReused()
        return await self.get_many(task_ids), True

    async def replay(self, key: str, request_hash: str) -> list[Task] | None:
        async with self._connect() as conn:
            known = await history.known_key(conn, key)
        if known is None:
            return None
        known_hash, task_ids = known
        if known_hash != request_hash:
            raise IdempotencyKeyReused()
        return await self.get_many(task_ids)

    async def prune_idempotency_keys(self, older_than: datetime) -> int:
        async with self._connect() as conn:
            return await history.prune_keys(conn, older_than)

    async def prune_finished(self, cutoffs: Cutoffs, *, limit: int) -> int:
        stmt = retention.pruning(cutoffs, limit=limit)
        if stmt is None:
            return 0
        async with self._connect() as conn:  # one statement: its own short transaction
            return (await conn.execute(stmt)).rowcount

    def exclusively(self, job: str) -> contextlib.AbstractAsyncContextManager[bool]:
        return self._turns.exclusively(job)

    async def attempts(self, task_id: UUID) -> list[Attempt]:
        async with self._connect() as conn:
            found = await history.attempts_of(conn, task_id)
        if found is None:
            raise _not_found(task_id)
        return found

    async def get(self, task_id: UUID) -> Task:
        async with self._connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == task_id))).first()
        if row is None:
            raise _not_found(task_id)
        return to_task(row._mapping)

    async def get_many(self, task_ids: Sequence[UUID]) -> list[Task]:
        if not task_ids:
            return []
        # On the claim's own connection: under a flow limit, each claim reads its batch first.
        async with self._writing("claim") as conn:
            found = {t.id: t for t in map(to_task, await self._dialect.read(conn, set(task_ids)))}
        return [found[i] for i in task_ids if i in found]

    async def popped(self, task_ids: Sequence[UUID], *, keys: Collection[str]) -> list[Popped]:
        if not task_ids:
            return []
        # The payload only when a concurrency key needs it: most claims read six small columns.
        columns = (*POPPED, table.c.payload) if keys else POPPED
        async with self._writing("claim") as conn:
            rows = await self._dialect.read(conn, set(task_ids), columns)
        found = {row["id"]: to_popped(row) for row in rows}
        return [found[i] for i in task_ids if i in found]

    async def save(self, task: Task, *, closing: AttemptEnd | None = None) -> None:
        await self._saves.submit((task, closing))

    async def _save_many(self, items: Sequence[SaveItem]) -> Outcomes:
        ids = [task.id for task, _ in items]
        if len(set(ids)) == len(ids):
            try:
                return await self._save_together(items)
            except self._own_save_errors as exc:
                if len(items) == 1:
                    return [exc]
        # One task twice (its changes must apply in order), or a value the store refuses,
        # which fails the whole write: save one by one, so each caller learns of its own.
        return [(await self._save_many([item]))[0] for item in items]

    async def _save_together(self, items: Sequence[SaveItem]) -> Outcomes:
        rows = [changed_row(task, closing) for task, closing in items]
        document = encode(rows)
        ids = [row.id for row in rows]
        async with self._writing("save") as conn:
            written = await self._dialect.save(conn, rows, document)
            missed = [i for i in ids if i not in written]
            known = set()
            if missed:
                found = await conn.execute(select(table.c.id).where(self._dialect.id_in(missed)))
                known = {row[0] for row in found}
        return [None if i in written else StaleTask() if i in known else _not_found(i) for i in ids]

    async def claim(
        self, task_ids: Sequence[UUID], *, worker_id: str, lease_seconds: float
    ) -> list[Task]:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return []
        async with self._writing("claim") as conn:
            rows = await self._dialect.claim(
                conn, ids, worker_id=worker_id, lease_seconds=lease_seconds
            )
        claimed = {t.id: t for t in map(to_task, rows)}
        return [claimed[i] for i in ids if i in claimed]

    async def renew_leases(self, leases: Mapping[UUID, UUID], *, lease_seconds: float) -> Renewal:
        if not leases:
            return Renewal(frozenset())
        now, expires_at = self._dialect.times(lease_seconds)
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
            _, horizon = self._dialect.times(horizon_seconds)
            stmt = stmt.where(table.c.lease_expires_at <= horizon)
        stmt = stmt.order_by(table.c.lease_expires_at, table.c.id).limit(limit)
        async with self._connect() as conn:
            return [to_task(m) for m in (await conn.execute(stmt)).mappings()]

    async def pending(self, *, after: UUID | None, limit: int) -> list[Dispatch]:
        columns = (table.c.id, table.c.queue, table.c.priority, table.c.run_at, table.c.type)
        stmt = select(*columns).where(status_in(CLAIMABLE)).order_by(table.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(table.c.id > after)
        async with self._connect() as conn:
            return [Dispatch(*row) for row in await conn.execute(stmt)]

    async def ping(self) -> None:
        async with self._connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def find(self, query: TaskQuery, *, after: Position | None, limit: int) -> list[Task]:
        stmt = listing.finding(query, self._dialect, after=after, limit=limit)
        async with self._connect() as conn:
            return [to_task(m) for m in (await conn.execute(stmt)).mappings()]

    async def stats(self, *, tenant: str | None) -> list[TaskCount]:
        async with self._connect() as conn:
            rows = (await conn.execute(listing.counting(tenant))).all()
        # Sorted here: the databases' collations need not agree on the order of names.
        return sorted(TaskCount(q, t, TaskStatus(s), n) for q, t, s, n in rows)

    async def finished_per_minute(
        self, since: datetime, *, tenant: str | None
    ) -> list[MinuteCount]:
        stmt = listing.finishing(since, self._dialect, tenant)
        async with self._connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted(MinuteCount(since + m * MINUTE, TaskStatus(s), n) for m, s, n in rows)

    async def count_unfinished(self, tenant: str) -> int:
        async with self._connect() as conn:
            return int((await conn.execute(listing.unfinished(tenant))).scalar_one())

    async def save_changed(self, items: Sequence[tuple[Task, TaskChange]]) -> set[UUID]:
        if not items:
            return set()
        values = changelog.checked(items)
        async with self._connect(transaction=True) as conn:
            return await changelog.save_changed(conn, items, values)

    async def changes(self, task_id: UUID) -> list[TaskChange]:
        async with self._connect() as conn:
            found = await changelog.changes_of(conn, task_id)
        if found is None:
            raise _not_found(task_id)
        return found

    def callback_store(self) -> SqlCallbackStore:
        """The completion-webhook callbacks kept in this store (decision 23)."""
        return SqlCallbackStore(self._engine, self._dialect)

    def key_store(self) -> SqlKeyStore:
        """The API keys kept in this store (decision 30)."""
        return SqlKeyStore(self._engine)

    @classmethod
    def connect(
        cls, url: str, *, clock: Clock | None = None, pool_size: int = 10
    ) -> SqlTaskRepository:
        """A repository on an engine of its own, which ``close`` disposes of."""
        return cls(create_engine(url, pool_size=pool_size), clock=clock, owns_engine=True)

    async def warm(self, *writes: Write) -> None:
        """Open the connections of ``writes`` and prepare their statements now, at start, rather
        than on the first task."""
        with store_errors():
            await self._dialect.warm(writes)

    async def close(self) -> None:
        """Hand back the connections this repository keeps; call before disposing the engine
        (which it does itself when it made the engine)."""
        await self._dialect.close()
        if self._owns_engine:
            await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _connect(self, *, transaction: bool = False) -> AsyncIterator[AsyncConnection]:
        with store_errors():
            if transaction:
                async with self._engine.begin() as conn:
                    yield conn
            else:
                async with self._autocommit.connect() as conn:
                    yield conn

    @contextlib.asynccontextmanager
    async def _writing(self, write: Write) -> AsyncIterator[AsyncConnection]:
        with store_errors():
            async with self._dialect.writing(write) as conn:
                yield conn

    @contextlib.contextmanager
    def _duplicates(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.IntegrityError as exc:
            if self._dialect.is_unique_violation(exc):
                raise DuplicateTask() from exc
            raise


def _not_found(task_id: UUID) -> TaskNotFound:
    return TaskNotFound(f"no task has id {task_id}")
