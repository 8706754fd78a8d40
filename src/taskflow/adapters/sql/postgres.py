"""The hot statements on PostgreSQL, run straight on asyncpg (decision 10).

- ``insert`` and ``save`` take a batch of rows (``rows.Row``) as one JSON document, which
  ``json_to_recordset`` (the save: ``jsonb_to_recordset``) unpacks by column name: the same
  SQL text for any batch size (one prepared statement per connection), atomic on its own,
  with no BEGIN/COMMIT around it. A duplicate id, stored already or twice in the batch,
  fails the whole insert: nothing is stored. Measured against SQLAlchemy's ``executemany`` of
  500 rows: about 1 µs of client CPU per row instead of 15, and about twice the rows per
  second.
- ``Compiled`` runs a statement built with SQLAlchemy (the claim) as text compiled once.

asyncpg prepares and caches each statement; SQLAlchemy's per-execution and per-row work is
skipped. Parameters and results are what asyncpg gives: its UUIDs equal and hash as
``uuid.UUID``, and its JSON codec is the one SQLAlchemy set up for the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import Column, Select, Update, literal_column
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from taskflow.adapters.sql.rows import FIXED
from taskflow.adapters.sql.schema import UtcDateTime, keeping_renewal, tasks
from taskflow.domain.errors import DuplicateTask

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # numbered parameters: $1, …


async def fetch_raw(conn: AsyncConnection, sql: str, args: list[Any]) -> list[Any]:
    """Run ``sql`` (PostgreSQL text, $n parameters) straight on the asyncpg connection."""
    raw = await _driver(conn)
    try:
        return list(await raw.fetch(sql, *args))
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        # A server that ended the session while the connection sat idle in the pool can
        # leave asyncpg's protocol in this state: the connection is as dead.
        asyncpg.InternalClientError,
    ):
        # SQLAlchemy did not run this statement, so it cannot tell that the connection died:
        # drop it here, or the pool would hand the dead connection out again.
        await conn.invalidate()
        raise


async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    sync = conn.sync_connection
    if sync is not None and not (sync.invalidated or sync.closed):
        # Neither invalidated nor closed: the pooled connection is there, and reading it does
        # no I/O. ``get_raw_connection`` would read the same attribute inside a greenlet,
        # about 15 µs per statement, twice on the path from a submission to its claim.
        raw = sync.connection.driver_connection
    else:
        raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


def _record(columns: Iterable[Column[Any]]) -> str:
    """The column definitions of ``json(b)_to_recordset``: names and types as in ``tasks``."""
    return ", ".join(f"{c.name} {c.type.compile(dialect=_DIALECT)}" for c in columns)


_NAMES = ", ".join(c.name for c in tasks.c)

# json, not jsonb: the document is read once, in order, so building a jsonb value of it first
# is wasted work: about 10 µs of a single task's insert (on the path from submission to
# claim), a fifth of a 500-task batch's. (The save reads its rows twice and gains nothing.)
# Bandit's B608 (here and on SAVE_SQL) sees SQL built with an f-string: from our own table's
# columns, never from input; the values are bound parameters.
INSERT_SQL = (
    f"INSERT INTO tasks ({_NAMES}) SELECT {_NAMES} "  # nosec B608
    f"FROM json_to_recordset($1::json) AS r({_record(tasks.c)})"
)


async def insert(conn: AsyncConnection, document: str) -> None:
    """Store the rows of ``document`` (``rows.encode`` of ``new_row``s), all or none."""
    try:
        await fetch_raw(conn, INSERT_SQL, [document])
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateTask() from exc


_CHANGING = [c for c in tasks.c if c.name not in FIXED]
_SET = ", ".join(
    f"{c.name} = v.{c.name}" for c in _CHANGING if c.name not in {"id", "lease_expires_at"}
)
_KEEPING_RENEWAL = keeping_renewal(
    literal_column("v.lease_token"), literal_column("v.lease_expires_at", UtcDateTime())
).compile(dialect=_DIALECT)

# $1: the rows (``rows.encode`` of ``changed_row``s); $2: their ids. Each row is written only
# where the stored version is still the one the change was computed from, exactly like a
# single save, and the attempt it ends is written in the same statement.
SAVE_SQL = f"""
WITH v AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS v({_record(_CHANGING)}, closing jsonb)
),
saved AS (
  UPDATE tasks SET {_SET},
    -- Task.keeping_renewal_of in bulk: a heartbeat may have renewed the lease since the
    -- change was computed, without a new version; the later expiry of the same lease stays.
    lease_expires_at = {_KEEPING_RENEWAL}
  FROM v
  -- the id array lets the planner find the rows by primary key; joining on v alone, it
  -- guesses v's size and may scan the whole table
  WHERE tasks.id = ANY($2::uuid[]) AND tasks.id = v.id AND tasks.version = v.version - 1
  RETURNING tasks.id
),
ended AS (
  -- The attempt's one row, written when it ends (decision 18); a row a claim opened before
  -- that decision is closed instead.
  INSERT INTO attempts AS a (task_id, attempt, worker_id, started_at, finished_at, outcome, error)
  SELECT v.id, (v.closing ->> 'attempt')::int, v.closing ->> 'worker_id',
    (v.closing ->> 'started_at')::timestamptz, (v.closing ->> 'finished_at')::timestamptz,
    v.closing ->> 'outcome', NULLIF(v.closing -> 'error', 'null'::jsonb)
  FROM v JOIN saved ON saved.id = v.id
  WHERE jsonb_typeof(v.closing) = 'object'
  ON CONFLICT (task_id, attempt) DO UPDATE SET
    finished_at = excluded.finished_at, outcome = excluded.outcome, error = excluded.error
  WHERE a.finished_at IS NULL
)
SELECT id FROM saved
"""  # nosec B608


async def save(conn: AsyncConnection, document: str, ids: list[UUID]) -> set[UUID]:
    """Write every change of ``document`` whose version still matches; returns the ids written."""
    return {row[0] for row in await fetch_raw(conn, SAVE_SQL, [document, ids])}


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled once to PostgreSQL text with numbered parameters.

    Building and compiling a statement costs more than running it; this is done once.
    """

    sql: str
    names: tuple[str, ...]  # the parameters, in order
    fixed: dict[str, Any]  # the values compiled into the statement

    @classmethod
    def of(cls, statement: Select[Any] | Update) -> Compiled:
        compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        return cls(compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params))

    async def fetch(self, conn: AsyncConnection, **values: Any) -> list[Any]:
        values = {**self.fixed, **values}
        return await fetch_raw(conn, self.sql, [values[name] for name in self.names])
