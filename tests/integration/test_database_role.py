"""Issue 13, item 6: the least-privilege database role of docs/security.md works.

The two SQL blocks of that page run as printed (with role and database names of this test's
own): an owner migrates, then a runtime role with rows-only rights runs a real `taskflow api`
and `taskflow worker` through a task's life, and is refused DDL.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, TEST_DATABASE_PREFIX
from tests.integration.conftest import StackFactory
from tests.integration.processes import base_env, run_cli

SECURITY_DOC = Path(__file__).parents[2] / "docs" / "security.md"
SERVER = PG_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1].split("@", 1)[-1]  # host:port


@dataclass(frozen=True)
class Names:
    owner: str
    app: str
    database: str

    def url(self, role: str, *, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{role}:not-checked@{SERVER}/{self.database}"

    def fill(self, sql: str) -> str:
        """The documented SQL with this test's names for the roles and the database."""
        sql = re.sub(r"\btaskflow_owner\b", self.owner, sql)
        sql = re.sub(r"\btaskflow_app\b", self.app, sql)
        return re.sub(r"\btaskflow\b", self.database, sql)


def statements(first_line: str) -> list[str]:
    """The statements of the ```sql block of docs/security.md that starts with ``first_line``."""
    blocks = re.findall(r"```sql\n(.*?)```", SECURITY_DOC.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if b.startswith(first_line)]
    code = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


async def run_sql(url: str, sql: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in sql:
            await conn.execute(statement)  # one at a time: CREATE DATABASE needs no transaction
    finally:
        await conn.close()


@pytest.fixture
def names() -> Iterator[Names]:
    tag = uuid.uuid4().hex[:10]
    # The tests' prefix: a database a killed run leaves is swept with the others.
    made = Names(f"tf_owner_{tag}", f"tf_app_{tag}", f"{TEST_DATABASE_PREFIX}roles_{tag}")
    yield made
    cleanup = [
        f'DROP DATABASE IF EXISTS "{made.database}" WITH (FORCE)',
        f'DROP ROLE IF EXISTS "{made.app}"',
        f'DROP ROLE IF EXISTS "{made.owner}"',
    ]
    asyncio.run(run_sql(PG_ADMIN_URL, cleanup))


def test_the_documented_runtime_role_runs_api_and_workers_without_ddl_rights(
    names: Names, tmp_path: Path
) -> None:
    admin = statements("-- as a superuser")
    grants = statements("-- as taskflow_owner, after taskflow migrate")
    assert any("CREATE DATABASE" in s for s in admin)
    assert any("ALTER DEFAULT PRIVILEGES" in s for s in grants)
    asyncio.run(run_sql(PG_ADMIN_URL, [names.fill(s) for s in admin]))

    migrated = run_cli(["migrate"], base_env(TASKFLOW_DATABASE_URL=names.url(names.owner)))
    assert migrated.returncode == 0, migrated.stderr
    owner_url = names.url(names.owner, driver="postgresql")
    asyncio.run(run_sql(owner_url, [names.fill(s) for s in grants]))

    factory = StackFactory(lambda: names.url(names.app), tmp_path)
    try:
        stack = factory()
        stack.start_api()
        stack.start_worker()
        ok = stack.submit({"type": "debug.echo", "payload": {"a": 1}})
        fail = stack.submit(
            {"type": "debug.fail", "payload": {"fail_attempts": 9}, "max_retries": 1}
        )
        later = stack.submit({"type": "debug.echo", "payload": {}, "delay_seconds": 3600})
        cancelled = httpx.post(f"{stack.base_url}/api/tasks/{later['id']}/cancel", timeout=30)
        assert cancelled.status_code == 200, cancelled.text
        done = stack.wait_status([ok["id"], fail["id"]])
        assert [t["status"] for t in done] == ["SUCCESS", "FAILED"]
        for path in ("/dashboard/", f"/dashboard/tasks/{fail['id']}", "/metrics", "/api/queues"):
            answer = httpx.get(f"{stack.base_url}{path}", timeout=30)
            assert answer.status_code == 200, (path, answer.text)
        ready = httpx.get(f"{stack.base_url}/health/ready", timeout=30).json()
        assert ready["status"] == "ok", ready
        for process in stack.processes:
            assert "permission denied" not in process.output(), process.output()[-3000:]
    finally:
        factory.close()

    asyncio.run(_refused_ddl(names.url(names.app, driver="postgresql")))


async def _refused_ddl(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in (
            "CREATE TABLE sneaky (id int)",
            "DROP TABLE tasks",
            "ALTER TABLE tasks ADD COLUMN sneaky int",
            "UPDATE alembic_version SET version_num = 'x'",
            "DELETE FROM alembic_version",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 3
    finally:
        await conn.close()
