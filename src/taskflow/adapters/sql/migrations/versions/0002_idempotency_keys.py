"""Idempotency keys in a table of their own; tasks of one batch may share a key.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15

Frozen, like 0001: types are spelled out here rather than imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A batch submitted with one Idempotency-Key stores that key on each of its tasks.
    op.drop_index("ux_tasks_idempotency_key", table_name="tasks")
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column(
            "task_ids", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    # Fails if tasks share a key by then: there is no unique index to go back to.
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    keyed = sa.text("idempotency_key IS NOT NULL")
    op.create_index(
        "ux_tasks_idempotency_key",
        "tasks",
        ["idempotency_key"],
        unique=True,
        postgresql_where=keyed,
        sqlite_where=keyed,
    )
