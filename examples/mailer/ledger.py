"""A durable record of what the mailer sent, keyed by task id.

SMTP has no idempotency key: a server that accepted a message has no way to tell that a second
one is a repeat. So the mailer remembers, outside the SMTP conversation, which tasks it has
sent, and looks before it sends. Each task has one row that goes through two states:

    (no row) ──before connecting──▶ sending ──once the server said 250──▶ sent

- ``sent``: the server accepted the message. A later attempt sends nothing.
- ``sending``: an earlier attempt started but did not record the server's answer. Whether the
  message went out is unknown (the worker may have died before, during or just after the
  server accepted it). The mailer then sends again, with the same Message-ID.

This example keeps the record in a SQLite file (stdlib ``sqlite3``, one commit per change,
durable once ``commit`` returns), which every worker *on one host* shares. With workers on
several hosts, keep it in a database they all reach (your application's PostgreSQL): the same
table and the same three statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_mail (
    task_id    TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('sending', 'sent')),
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


class SentLedger:
    """The ``sent_mail`` table of one SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def state(self, task_id: str) -> str | None:
        """``"sending"``, ``"sent"``, or None when no attempt of this task got that far."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT state FROM sent_mail WHERE task_id = ?", (task_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def mark_sending(self, task_id: str, message_id: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO sent_mail (task_id, message_id, state) VALUES (?, ?, 'sending')"
                " ON CONFLICT (task_id) DO NOTHING",
                (task_id, message_id),
            )

    def mark_sent(self, task_id: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE sent_mail SET state = 'sent', updated_at = CURRENT_TIMESTAMP"
                " WHERE task_id = ?",
                (task_id,),
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # `timeout`: several worker processes may write at once; SQLite makes them take turns.
        # `with conn` commits on success, durably (synchronous=FULL is SQLite's default).
        with closing(sqlite3.connect(self._path, timeout=30)) as conn, conn:
            conn.execute(SCHEMA)
            yield conn
