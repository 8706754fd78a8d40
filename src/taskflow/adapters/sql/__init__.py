"""The task store on SQL: PostgreSQL (asyncpg) in production, SQLite (aiosqlite) for `taskflow dev`.

- ``repository``: ``SqlTaskRepository``, the ``TaskRepository`` port, written once for both;
- ``dialect``: every difference between PostgreSQL and SQLite, chosen once at construction;
- ``postgres``: the raw asyncpg statements of the hot paths (claim, group-committed save, insert);
- ``rows``: the one encoding of a ``Task`` to a row and back;
- ``schema``, ``history``, ``engine``, ``migrations``: tables, attempts and keys, connecting.

U+0000, which PostgreSQL cannot keep, is refused or cleaned on both (``rows``), by the rule of
``taskflow.domain.unstorable``.
"""

from taskflow.adapters.sql.engine import create_engine, migrate
from taskflow.adapters.sql.repository import SqlTaskRepository

__all__ = ["SqlTaskRepository", "create_engine", "migrate"]
