"""Completion webhooks: a task's callback, and every try to deliver it (decision 23).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Frozen, like 0001: names and types are spelled out here rather than imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_version", sa.Integer(), nullable=True),
        sa.Column("lock_token", sa.Uuid(), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("message_version", sa.Integer(), nullable=True),
        sa.Column("message_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name="pk_callbacks"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_callbacks_task_id", ondelete="CASCADE"
        ),
    )
    open_rows = sa.text("next_attempt_at IS NOT NULL")
    op.create_index(
        "ix_callbacks_next_attempt_at",
        "callbacks",
        ["next_attempt_at"],
        postgresql_where=open_rows,
        sqlite_where=open_rows,
    )
    op.create_table(
        "deliveries",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "attempt", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_deliveries_task_id", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_index("ix_callbacks_next_attempt_at", table_name="callbacks")
    op.drop_table("callbacks")
