"""The tasks table and the attempts history.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Frozen: statuses and types are spelled out here rather than imported, so this revision keeps
creating the same schema whatever the code becomes later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'PENDING', 'PROCESSING', 'SUCCESS', 'FAILED', 'CANCELLED'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("run_at", _timestamp(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", _json(), nullable=True),
        sa.Column("result", _json(), nullable=True),
        sa.Column("error", _json(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_worker_id", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", _timestamp(), nullable=True),
        sa.Column("backoff_base", sa.Float(), nullable=False),
        sa.Column("backoff_max", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_tasks_status"),
    )
    op.create_index("ix_tasks_status_run_at", "tasks", ["status", "run_at"])
    processing = sa.text("status IN ('PROCESSING')")
    op.create_index(
        "ix_tasks_lease_expires_at",
        "tasks",
        ["lease_expires_at"],
        postgresql_where=processing,
        sqlite_where=processing,
    )
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])
    keyed = sa.text("idempotency_key IS NOT NULL")
    op.create_index(
        "ux_tasks_idempotency_key",
        "tasks",
        ["idempotency_key"],
        unique=True,
        postgresql_where=keyed,
        sqlite_where=keyed,
    )
    op.create_table(
        "attempts",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(255), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("error", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_attempts_task_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "attempt", name="pk_attempts"),
    )


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_index("ux_tasks_idempotency_key", table_name="tasks")
    op.drop_index("ix_tasks_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_lease_expires_at", table_name="tasks")
    op.drop_index("ix_tasks_status_run_at", table_name="tasks")
    op.drop_table("tasks")
