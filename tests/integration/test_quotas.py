"""Tenant quotas on real processes (decision 37): two `taskflow api` processes on one database
and one Redis prefix count every tenant's submissions together; keys made with
`taskflow keys create --tenant`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory
from tests.integration.processes import run_cli, wait_for
from tests.integration.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

BODY = {"type": "debug.echo", "payload": {"n": 1}}
RATE_BURST = 4
UNFINISHED = 3
# Ten an hour: after the burst, nothing passes again for 360 s, longer than any test runs.
QUOTAS = f"acme=rate:10/h,burst:{RATE_BURST};globex=unfinished:{UNFINISHED}"


def _create_key(env: Mapping[str, str], tenant: str) -> str:
    # admin: submit, read, and cancel the tenant's own tasks
    args = ["keys", "create", "--name", f"{tenant}-app", "--scopes", "admin"]
    made = run_cli([*args, "--tenant", tenant], env)
    assert made.returncode == 0, made.stderr
    return dict(line.split(": ", 1) for line in made.stdout.splitlines())["key"]


@dataclass
class Apis:
    stack: Stack
    urls: list[str]
    keys: dict[str, str]

    def post(self, url: str, tenant: str, body: Any = BODY) -> httpx.Response:
        path = "/api/tasks/batch" if "tasks" in body else "/api/tasks"
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)

    def call(self, tenant: str, method: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        return httpx.request(method, f"{self.urls[0]}{path}", headers=headers, timeout=30)

    def stored(self, tenant: str) -> list[dict[str, Any]]:
        answer = self.call(tenant, "GET", "/api/tasks?limit=100")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@pytest.fixture(scope="module")
def apis(module_stack_factory: StackFactory) -> Apis:
    """Two API processes sharing the database and Redis; no worker, so tasks stay PENDING."""
    stack = module_stack_factory(TASKFLOW_TENANT_QUOTAS=QUOTAS)
    keys = {tenant: _create_key(stack.env, tenant) for tenant in ("acme", "globex")}
    stack.start_api()
    _, second = stack.start_another_api()
    return Apis(stack, [stack.base_url, second], keys)


def test_the_rate_holds_across_two_api_processes(apis: Apis) -> None:
    began = time.monotonic()
    answers = [(url, apis.post(url, "acme")) for url in apis.urls * 6]  # alternating
    elapsed = time.monotonic() - began
    admitted = [a for _, a in answers if a.status_code == 202]
    refused = [(url, a) for url, a in answers if a.status_code == 429]
    assert len(admitted) + len(refused) == len(answers), [a.text for _, a in answers]
    # One burst for the tenant, not one per process (each alone would admit four).
    assert len(admitted) == RATE_BURST, apis.stack.dump_logs()
    assert {url for url, _ in refused} == set(apis.urls)
    for _, answer in refused:
        assert answer.headers["content-type"] == "application/problem+json"
        wait = int(answer.headers["Retry-After"])
        assert 360 - elapsed - 1 <= wait <= 360
        assert "tenant 'acme' is over its quota of 10/h (burst 4)" in answer.json()["detail"]
    assert len(apis.stored("acme")) == RATE_BURST  # the refused stored nothing

    submitted = run_cli(
        ["submit", "debug.echo", "--url", apis.urls[1]],
        {**apis.stack.env, "TASKFLOW_API_KEY": apis.keys["acme"]},
    )
    assert submitted.returncode == 1
    [line] = submitted.stderr.splitlines()
    assert "HTTP 429: tenant 'acme' is over its quota" in line
    assert submitted.stdout == ""


def test_the_unfinished_quota_refuses_then_admits_once_a_task_is_cancelled(apis: Apis) -> None:
    first, second = apis.urls
    ids = [apis.post(url, "globex").json()["id"] for url in (first, second, first)]
    for url in apis.urls:
        refused = apis.post(url, "globex")
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert f"at most {UNFINISHED} unfinished tasks" in refused.json()["detail"]
    too_many = apis.post(second, "globex", {"tasks": [BODY] * (UNFINISHED + 1)})
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["field"] == "tasks"

    assert apis.call("globex", "POST", f"/api/tasks/{ids[0]}/cancel").status_code == 200
    tries = iter(apis.urls * 1000)
    # The count is read again from PostgreSQL about once a second.
    wait_for(
        lambda: apis.post(next(tries), "globex").status_code == 202,
        timeout=30,
        interval=0.1,
        what="a submission to pass once a task was cancelled",
    )
    assert apis.post(first, "globex").status_code == 429
    statuses = sorted(task["status"] for task in apis.stored("globex"))
    assert statuses == ["CANCELLED"] + ["PENDING"] * UNFINISHED


@pytest.fixture
def own_redis_stack(
    pg_database_factory: Callable[[], str], redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Stack, RedisServer]]:
    factory = StackFactory(pg_database_factory, tmp_path)
    yield factory(TASKFLOW_REDIS_URL=redis_server.url, TASKFLOW_TENANT_QUOTAS=QUOTAS), redis_server
    factory.close()


def test_with_redis_down_submissions_are_admitted_and_one_warning_said(
    own_redis_stack: tuple[Stack, RedisServer],
) -> None:
    stack, redis_server = own_redis_stack
    key = _create_key(stack.env, "acme")
    api = stack.start_api()
    apis = Apis(stack, [stack.base_url], {"acme": key})
    answers = [apis.post(stack.base_url, "acme").status_code for _ in range(RATE_BURST + 1)]
    assert answers == [202] * RATE_BURST + [429]

    redis_server.stop()
    answers = [apis.post(stack.base_url, "acme").status_code for _ in range(3)]
    assert answers == [202] * 3, stack.dump_logs()
    assert len(apis.stored("acme")) == RATE_BURST + 3
    assert api.output().count("tenant quotas are not counted") == 1
