"""Periodic schedules and the ticks they enqueued (decision 22).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Frozen, like 0001: names and types are spelled out here rather than imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )
    op.create_table(
        "schedule_ticks",
        sa.Column("schedule", sa.String(128), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("schedule", "tick", name="pk_schedule_ticks"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_schedule_ticks_task_id", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_schedule_ticks_task_id", "schedule_ticks", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_schedule_ticks_task_id", table_name="schedule_ticks")
    op.drop_table("schedule_ticks")
    op.drop_table("schedules")
