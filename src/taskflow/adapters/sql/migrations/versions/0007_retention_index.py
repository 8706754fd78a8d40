"""An index for the retention job: finished tasks, oldest first (decision 24).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Frozen, like 0001: names and columns are spelled out here rather than imported. On a large
table, building it takes a while and blocks writes to it (every migration runs in one
transaction, under the migrators' lock); see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINAL = "status IN ('CANCELLED', 'FAILED', 'SUCCESS')"


def upgrade() -> None:
    # Partial: a task enters it once, when it reaches a final state; claims and lease renewals
    # of running tasks never write to it.
    op.create_index(
        "ix_tasks_finished_at",
        "tasks",
        ["finished_at"],
        postgresql_where=sa.text(_FINAL),
        sqlite_where=sa.text(_FINAL),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
