"""Paused queues (decision 25).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Frozen, like 0001: names and columns are spelled out here rather than imported. A new, empty
table: nothing waits on the tasks table. No index on tasks: the queue figures read indexes
that exist (docs/operations.md, "Queues and workers").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paused_queues",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_paused_queues"),
    )


def downgrade() -> None:
    op.drop_table("paused_queues")
