"""Whose task it is: the tenant of the key that submitted it (decision 36).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

Frozen, like 0001: names and columns are spelled out here rather than imported. The column is
nullable without a default, so adding it changes no row and is instant on a table of any size;
NULL is the default tenant. Both indexes are partial on a named tenant, so on a deployment
without tenants they start, and stay, empty (building them still reads the table once).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAMED = "tenant IS NOT NULL"
_NAMED_UNFINISHED = "tenant IS NOT NULL AND status IN ('PENDING', 'PROCESSING')"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("tenant", sa.String(64), nullable=True))
    op.create_index(
        "ix_tasks_tenant_created_at_id",
        "tasks",
        ["tenant", "created_at", "id"],
        postgresql_where=sa.text(_NAMED),
        sqlite_where=sa.text(_NAMED),
    )
    op.create_index(
        "ix_tasks_tenant_unfinished",
        "tasks",
        ["tenant"],
        postgresql_where=sa.text(_NAMED_UNFINISHED),
        sqlite_where=sa.text(_NAMED_UNFINISHED),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_tenant_unfinished", table_name="tasks")
    op.drop_index("ix_tasks_tenant_created_at_id", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("tenant")
