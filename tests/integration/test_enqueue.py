"""taskflow.enqueue inside the caller's own PostgreSQL transaction, served by real processes.

The stack's API sweeps once at start and then only every 10 minutes, and no worker runs until
the first test has seen its task reach Redis: only the commit's notification can put it there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

import taskflow
from taskflow.config import Settings
from taskflow.debug_tasks import tasks as debug_tasks
from taskflow.domain.errors import (
    InvalidPayload,
    InvalidSubmission,
    PayloadTooLarge,
    UnknownTaskType,
)
from taskflow.domain.limits import MAX_METADATA_BYTES
from taskflow.domain.model import Task
from tests.conftest import REDIS_URL
from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import wait_for

FIRST_SWEEP = "re-dispatched tasks missing from the queue"


class Rollback(Exception):
    """Raised to abandon a transaction on purpose."""


@pytest.fixture(scope="module")
def quiet_stack(module_stack_factory: StackFactory) -> Stack:
    built = module_stack_factory(TASKFLOW_SWEEP_SECONDS="600")
    api = built.start_api()
    # The first sweep (at start) refills the empty queue and says so; the next is ten
    # minutes away.
    wait_for(lambda: FIRST_SWEEP in api.output(), timeout=60, interval=0.1, what="a first sweep")
    return built


def _with_a_worker(stack: Stack) -> Stack:
    if not any(p.args[0] == "worker" for p in stack.processes):
        stack.start_worker()
    return stack


@pytest.fixture
async def conn(quiet_stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    url = make_url(quiet_stack.env["TASKFLOW_DATABASE_URL"]).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    await connection.execute("CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY)")
    yield connection
    await connection.close()


def _status(stack: Stack, task_id: uuid.UUID) -> int:
    return httpx.get(f"{stack.base_url}/api/tasks/{task_id}", timeout=10).status_code


async def test_a_task_enqueued_in_a_committed_transaction_runs_at_once(
    quiet_stack: Stack, conn: asyncpg.Connection
) -> None:
    async with conn.transaction():
        await conn.execute("INSERT INTO orders VALUES ($1)", "A-1")
        task = await taskflow.enqueue(conn, "debug.echo", {"order": "A-1"}, registry=debug_tasks)
    ready = f"{quiet_stack.env['TASKFLOW_REDIS_PREFIX']}:q:default:ready"
    with redis.Redis.from_url(REDIS_URL) as client:
        await asyncio.to_thread(
            wait_for,
            lambda: client.zscore(ready, str(task.id)) is not None,
            timeout=60,
            interval=0.05,
            what="the committed task's id in Redis",
        )
    [done] = await asyncio.to_thread(
        _with_a_worker(quiet_stack).wait_status, [str(task.id)], {"SUCCESS"}, timeout=60
    )
    assert done["result"] == {"order": "A-1"}


async def test_a_rolled_back_transaction_leaves_no_task(
    quiet_stack: Stack, conn: asyncpg.Connection
) -> None:
    enqueued: list[Task] = []

    async def abandoned_order() -> None:
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES ($1)", "A-2")
            enqueued.append(await taskflow.enqueue(conn, "debug.echo", {}, registry=debug_tasks))
            raise Rollback

    with pytest.raises(Rollback):
        await abandoned_order()
    assert _status(quiet_stack, enqueued[0].id) == 404
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE id = 'A-2'") == 0


async def test_on_a_sqlalchemy_connection_the_task_shares_its_transaction(
    quiet_stack: Stack,
) -> None:
    engine = create_async_engine(quiet_stack.env["TASKFLOW_DATABASE_URL"])
    enqueued: list[Task] = []

    async def abandoned() -> None:
        async with engine.begin() as conn:
            # The first statement of the transaction: it must not run outside of it.
            enqueued.append(await taskflow.enqueue(conn, "debug.echo", {}, registry=debug_tasks))
            raise Rollback

    try:
        with pytest.raises(Rollback):
            await abandoned()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO orders VALUES ('A-3')"))
            kept = await taskflow.enqueue(conn, "debug.echo", {"n": 3}, registry=debug_tasks)
    finally:
        await engine.dispose()
    assert _status(quiet_stack, enqueued[0].id) == 404
    [done] = await asyncio.to_thread(
        _with_a_worker(quiet_stack).wait_status, [str(kept.id)], {"SUCCESS"}, timeout=60
    )
    assert done["result"] == {"n": 3}


async def test_a_submission_the_registry_refuses_writes_nothing(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        with pytest.raises(UnknownTaskType):
            await taskflow.enqueue(conn, "no.such", {}, registry=debug_tasks)
        with pytest.raises(InvalidPayload) as refused:
            await taskflow.enqueue(conn, "debug.sleep", {"seconds": "x"}, registry=debug_tasks)
        assert refused.value.field == "payload.seconds"
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE type = 'no.such'") == 0


async def test_a_payload_or_metadata_over_the_api_limits_is_refused_and_writes_nothing(
    conn: asyncpg.Connection,
) -> None:
    limit = Settings.from_env().max_payload_bytes
    big = {"blob": "x" * limit}
    before = await conn.fetchval("SELECT count(*) FROM tasks")
    async with conn.transaction():
        with pytest.raises(PayloadTooLarge, match="TASKFLOW_MAX_PAYLOAD_BYTES") as refused:
            await taskflow.enqueue(conn, "debug.echo", big, registry=debug_tasks)
        assert refused.value.field == "payload"
        wide = {"note": "y" * MAX_METADATA_BYTES}
        with pytest.raises(InvalidSubmission) as refused:
            await taskflow.enqueue(conn, "debug.echo", {}, registry=debug_tasks, metadata=wide)
        assert refused.value.field == "metadata"
        assert await conn.fetchval("SELECT count(*) FROM tasks") == before


def test_a_commit_nobody_heard_is_dispatched_by_the_next_sweep(
    stack_factory: StackFactory,
) -> None:
    # No process runs at commit time: the notification is lost, as in a crash between the
    # commit and the push. The first sweep of a worker started later dispatches the task.
    stack = stack_factory()
    url = make_url(stack.env["TASKFLOW_DATABASE_URL"]).set(drivername="postgresql")

    async def commit_one() -> Task:
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            async with connection.transaction():
                return await taskflow.enqueue(
                    connection, "debug.echo", {"late": True}, registry=debug_tasks
                )
        finally:
            await connection.close()

    task = asyncio.run(commit_one())
    stack.start_worker()
    stack.start_api()
    [done] = stack.wait_status([str(task.id)], {"SUCCESS"}, timeout=60)
    assert done["result"] == {"late": True}


async def test_a_task_enqueued_for_a_tenant_is_that_tenants_only(
    quiet_stack: Stack, conn: asyncpg.Connection
) -> None:
    async with conn.transaction():
        task = await taskflow.enqueue(conn, "debug.echo", {}, registry=debug_tasks, tenant="acme")
    assert task.tenant == "acme"
    assert await conn.fetchval("SELECT tenant FROM tasks WHERE id = $1", task.id) == "acme"
    assert _status(quiet_stack, task.id) == 404  # the open API is the default tenant
    with pytest.raises(InvalidSubmission, match="tenant"):
        await taskflow.enqueue(conn, "debug.echo", {}, registry=debug_tasks, tenant="")
