"""The trace a task belongs to: its submitter's W3C traceparent (decision 28).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Frozen, like 0001: the name and the type are spelled out here rather than imported. A
nullable column without a default: adding it changes no row, so it is instant on a table of
any size (PostgreSQL and SQLite alike), and a task submitted while tracing is off keeps NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("traceparent", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("traceparent")
