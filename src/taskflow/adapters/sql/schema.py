"""The SQL schema of the task store, shared by PostgreSQL and SQLite.

migrations/versions hold the same schema as frozen DDL; the contract suite checks that a migrated
database matches these tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from taskflow.domain.callbacks import CALLBACK_URL_MAX_LENGTH
from taskflow.domain.keys import DEFAULT_TENANT, KEY_NAME_MAX_LENGTH, TENANT_MAX_LENGTH
from taskflow.domain.limits import (
    ACTOR_MAX_LENGTH,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    QUEUE_MAX_LENGTH,
    TRACEPARENT_MAX_LENGTH,
    TYPE_MAX_LENGTH,
)
from taskflow.domain.model import ACTIVE, FINAL, RETRYABLE, UNFINISHED, TaskStatus
from taskflow.domain.schedules import SCHEDULE_NAME_MAX_LENGTH


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend.

    SQLite has no time zones: values are stored as naive UTC text (fixed width, so text order is
    time order) and come back tagged UTC. PostgreSQL keeps ``timestamptz`` as it is.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> TypeEngine[Any]:
    # none_as_null: a Python None is SQL NULL, so "no progress/error/result" is IS NULL in SQL.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _status_check() -> str:
    values = ", ".join(f"'{s.value}'" for s in TaskStatus)
    return f"status IN ({values})"


metadata = MetaData()

tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, nullable=False),
    Column("type", String(TYPE_MAX_LENGTH), nullable=False),
    Column("payload", _json(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("queue", String(QUEUE_MAX_LENGTH), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("retry_count", Integer, nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("timeout_seconds", Float, nullable=True),
    Column("run_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("progress", _json(), nullable=True),
    Column("result", _json(), nullable=True),
    Column("error", _json(), nullable=True),
    Column("metadata", _json(), nullable=False),
    Column("idempotency_key", String(IDEMPOTENCY_KEY_MAX_LENGTH), nullable=True),
    Column("version", Integer, nullable=False),
    Column("lease_token", Uuid, nullable=True),
    Column("lease_worker_id", String(255), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("backoff_base", Float, nullable=False),
    Column("backoff_max", Float, nullable=False),
    # The submitter's span, W3C traceparent; NULL while tracing is off (decision 28).
    Column("traceparent", String(TRACEPARENT_MAX_LENGTH), nullable=True),
    # The tenant of the key that submitted it; NULL for the default tenant (decision 36).
    Column("tenant", String(TENANT_MAX_LENGTH), nullable=True),
    PrimaryKeyConstraint("id", name="pk_tasks"),
    CheckConstraint(_status_check(), name="ck_tasks_status"),
)


def status_in(statuses: Iterable[TaskStatus], *, indexed: bool = True) -> ColumnElement[bool]:
    """``status IN (...)`` built from a domain set, with the values written into the SQL.

    Literal values, not parameters: only then can PostgreSQL and SQLite prove that a query
    implies the predicate of a partial index. ``indexed=False`` is for rows already found by
    primary key: it hides the column from the planner, which on a freshly filled table (stale
    statistics) would otherwise scan the status index and filter thousands of rows.
    """
    values = sorted(s.value for s in statuses)
    column = tasks.c.status if indexed else tasks.c.status.concat("")
    return column.in_(bindparam(None, values, expanding=True, literal_execute=True))


def keeping_renewal(
    token: ColumnElement[Any], expires_at: ColumnElement[datetime]
) -> ColumnElement[datetime]:
    """``Task.keeping_renewal_of`` in SQL: the lease expiry to write over the stored row.

    ``token`` and ``expires_at`` are the lease being written; when the stored row holds the
    same lease with a later expiry (a renewal the writer's copy predates), that one stays.
    """
    renewed = (tasks.c.lease_token == token) & (tasks.c.lease_expires_at > expires_at)
    return case((renewed, tasks.c.lease_expires_at), else_=expires_at)


_active = tasks.c.status.in_(sorted(s.value for s in ACTIVE))
_active_or_pending = tasks.c.status.in_(sorted(s.value for s in UNFINISHED))

# Due PENDING work, in run_at order.
Index("ix_tasks_status_run_at", tasks.c.status, tasks.c.run_at)
# The lease sweep reads only running tasks, a small fraction of the table.
Index(
    "ix_tasks_lease_expires_at",
    tasks.c.lease_expires_at,
    postgresql_where=_active,
    sqlite_where=_active,
)
# Listing newest first, with (created_at, id) as the keyset cursor.
Index("ix_tasks_created_at_id", tasks.c.created_at, tasks.c.id)
# Listing the tasks that need a person: FAILED or CANCELLED, newest first. Partial, so that
# the life of a task that succeeds (insert, claim, success) never writes to it: an index on
# every status, queue or type cost PostgreSQL about 15-30 µs of CPU per task of the drain
# (docs/performance.md, "Listing"). Other filters read ix_tasks_created_at_id newest first.
_needs_a_person = tasks.c.status.in_(sorted(s.value for s in RETRYABLE))
Index(
    "ix_tasks_retryable_created_at_id",
    tasks.c.status,
    tasks.c.created_at,
    tasks.c.id,
    postgresql_where=_needs_a_person,
    sqlite_where=_needs_a_person,
)
# A named tenant's tasks, newest first, and its unfinished ones (its quota). Partial: the
# default tenant's tasks (tenant NULL) never write to them, so a deployment without tenants
# pays nothing; the default tenant's listing reads the indexes above (decision 36).
_named_tenant = tasks.c.tenant.is_not(None)
Index(
    "ix_tasks_tenant_created_at_id",
    tasks.c.tenant,
    tasks.c.created_at,
    tasks.c.id,
    postgresql_where=_named_tenant,
    sqlite_where=_named_tenant,
)
_named_tenant_unfinished = and_(_named_tenant, _active_or_pending)
Index(
    "ix_tasks_tenant_unfinished",
    tasks.c.tenant,
    postgresql_where=_named_tenant_unfinished,
    sqlite_where=_named_tenant_unfinished,
)
# The retention job's oldest finished tasks first (decision 24). Partial: a task gets an entry
# once, when it reaches a final state; claims and heartbeats never write to it.
_final = tasks.c.status.in_(sorted(s.value for s in FINAL))
Index(
    "ix_tasks_finished_at",
    tasks.c.finished_at,
    postgresql_where=_final,
    sqlite_where=_final,
)

# One row per attempt, written with the outcome that ends it (decision 18); a running attempt
# is read from its task row.
attempts = Table(
    "attempts",
    metadata,
    Column(
        "task_id",
        Uuid,
        ForeignKey("tasks.id", ondelete="CASCADE", name="fk_attempts_task_id"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", String(255), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("error", _json(), nullable=True),
    PrimaryKeyConstraint("task_id", "attempt", name="pk_attempts"),
)

# Idempotency-Key → the task(s) its first request created. The key is unique here, not on
# tasks: a batch shares one key. Rows older than IDEMPOTENCY_KEY_TTL are pruned by the sweep.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("task_ids", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

# What people did to a task besides running it (a retry, with the payload it replaced), in the
# order they did it; written in the same transaction as the task's new version.
task_changes = Table(
    "task_changes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), autoincrement=True),
    Column(
        "task_id",
        Uuid,
        ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_changes_task_id"),
        nullable=False,
    ),
    Column("action", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("by", String(ACTOR_MAX_LENGTH), nullable=False),
    Column("after_attempt", Integer, nullable=False),
    Column("payload_before", _json(), nullable=True),
    Column("payload_after", _json(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_task_changes"),
)
Index("ix_task_changes_task_id", task_changes.c.task_id, task_changes.c.id)

# Periodic schedules (decision 22): one row per schedule of the Registry, written when a process
# first sees it, and shared by every process: paused or not, since when ticks count, the latest
# tick enqueued.
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(SCHEDULE_NAME_MAX_LENGTH), nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("last_tick_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name", name="pk_schedules"),
)

# One row per tick enqueued, written with its task in one transaction: the primary key is what
# makes a tick enqueued once, however many processes try. Deleted with the task (retention).
schedule_ticks = Table(
    "schedule_ticks",
    metadata,
    Column("schedule", String(SCHEDULE_NAME_MAX_LENGTH), nullable=False),
    Column("tick", UtcDateTime, nullable=False),
    Column(
        "task_id",
        Uuid,
        ForeignKey("tasks.id", ondelete="CASCADE", name="fk_schedule_ticks_task_id"),
        nullable=False,
    ),
    PrimaryKeyConstraint("schedule", "tick", name="pk_schedule_ticks"),
)
Index("ix_schedule_ticks_task_id", schedule_ticks.c.task_id)
# A task's completion-webhook callback (decision 23), written with the task in one transaction.
# ``next_attempt_at`` is set while a final state may still need a delivery (from the insert
# until one is settled, and again after a manual retry) and null once settled for
# ``delivered_version``: the deliverers' poll reads only the open rows, through a partial index.
callbacks = Table(
    "callbacks",
    metadata,
    Column(
        "task_id",
        Uuid,
        ForeignKey("tasks.id", ondelete="CASCADE", name="fk_callbacks_task_id"),
        nullable=False,
    ),
    Column("url", String(CALLBACK_URL_MAX_LENGTH), nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("delivered_version", Integer, nullable=True),
    Column("lock_token", Uuid, nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("message_id", String(64), nullable=True),
    Column("message_version", Integer, nullable=True),
    Column("message_started_at", UtcDateTime, nullable=True),
    Column("tries", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    PrimaryKeyConstraint("task_id", name="pk_callbacks"),
)
_open = callbacks.c.next_attempt_at.isnot(None)
Index(
    "ix_callbacks_next_attempt_at",
    callbacks.c.next_attempt_at,
    postgresql_where=_open,
    sqlite_where=_open,
)

# Every try to deliver a task's webhook, in order.
deliveries = Table(
    "deliveries",
    metadata,
    Column(
        "task_id",
        Uuid,
        ForeignKey("tasks.id", ondelete="CASCADE", name="fk_deliveries_task_id"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("task_id", "attempt", name="pk_deliveries"),
)

# Queues an operator paused (decision 25): a row while paused, none once resumed. Workers read
# the whole table at each heartbeat; it holds a handful of rows at most.
paused_queues = Table(
    "paused_queues",
    metadata,
    Column("name", String(QUEUE_MAX_LENGTH), nullable=False),
    Column("paused_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("name", name="pk_paused_queues"),
)

# API keys (decision 30): the SHA-256 of each key, never the key; revoked, never deleted.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, nullable=False),
    Column("name", String(KEY_NAME_MAX_LENGTH), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("scopes", String(64), nullable=False),  # comma-separated, sorted
    Column("tenant", String(TENANT_MAX_LENGTH), nullable=False, server_default=DEFAULT_TENANT),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("id", name="pk_api_keys"),
)
Index("ux_api_keys_hash", api_keys.c.hash, unique=True)
