"""The changes people make to tasks (a retry, with the payload it replaced).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Frozen, like 0001: names and types are spelled out here rather than imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    json = sa.JSON(none_as_null=True)
    return json.with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "task_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("after_attempt", sa.Integer(), nullable=False),
        sa.Column("payload_before", _json(), nullable=True),
        sa.Column("payload_after", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_task_changes"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_task_changes_task_id", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_task_changes_task_id", "task_changes", ["task_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_task_changes_task_id", table_name="task_changes")
    op.drop_table("task_changes")
