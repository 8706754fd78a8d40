"""An index for listing the FAILED and CANCELLED tasks (GET /api/tasks).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Frozen, like 0001: names and columns are spelled out here rather than imported. On a large
table, building these takes a while and blocks writes to it; see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RETRYABLE = "status IN ('CANCELLED', 'FAILED')"


def upgrade() -> None:
    # Partial: a task that succeeds never enters it, so the drain does not pay for it.
    op.create_index(
        "ix_tasks_retryable_created_at_id",
        "tasks",
        ["status", "created_at", "id"],
        postgresql_where=sa.text(_RETRYABLE),
        sqlite_where=sa.text(_RETRYABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_retryable_created_at_id", table_name="tasks")
