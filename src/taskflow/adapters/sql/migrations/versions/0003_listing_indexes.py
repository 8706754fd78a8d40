"""Indexes for listing tasks by status, queue, type and metadata (GET /api/tasks).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Frozen, like 0001: names and columns are spelled out here rather than imported. On a large
table, building these takes a while and blocks writes to it; see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_COLUMN = ("status", "queue", "type")


def upgrade() -> None:
    for column in _BY_COLUMN:
        op.create_index(f"ix_tasks_{column}_created_at_id", "tasks", [column, "created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_tasks_metadata",
            "tasks",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_metadata", table_name="tasks")
    for column in reversed(_BY_COLUMN):
        op.drop_index(f"ix_tasks_{column}_created_at_id", table_name="tasks")
