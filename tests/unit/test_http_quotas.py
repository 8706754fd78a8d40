"""Tenant quotas over HTTP (decision 37), on the in-memory stores and quota counter, with a clock
the test moves by hand: 429 with Retry-After and nothing stored, 400 for a batch that can never
pass, replays answered over the quota, other tenants untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.keys import DEFAULT_TENANT, Scope
from taskflow.domain.quotas import RECOUNT_SECONDS, parse_tenant_quotas
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.loading import load_registry
from tests.clocks import FakeClock

QUOTAS = "acme=rate:2/s,burst:3;globex=unfinished:2;*=unfinished:1000;default=unlimited"
TENANTS = [DEFAULT_TENANT, "acme", "globex", "initech"]
BODY = {"type": "debug.echo", "payload": {"n": 1}}


@dataclass
class Api:
    client: TestClient[Litestar]
    keys: dict[str, str]
    clock: FakeClock

    def submit(self, tenant: str, body: Any = BODY, **headers: str) -> httpx.Response:
        path = "/api/tasks/batch" if "tasks" in body else "/api/tasks"
        headers["Authorization"] = f"Bearer {self.keys[tenant]}"
        return self.client.post(path, json=body, headers=headers)

    def ids(self, tenant: str) -> list[str]:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        listed = self.client.get("/api/tasks", params={"limit": 100}, headers=headers)
        return [task["id"] for task in listed.json()["items"]]


def _container(clock: FakeClock) -> Container:
    settings = Settings(redis_url=None, tenant_quotas=parse_tenant_quotas(QUOTAS))  # type: ignore[call-arg]
    built = build_container(settings, load_registry(None, debug_tasks=True))
    built.clock.override(providers.Object(clock))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, clock))
    return built


@pytest.fixture
def api() -> Iterator[Api]:
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    container = _container(clock)
    service = container.key_service()

    async def make() -> dict[str, str]:
        scopes = frozenset({Scope.ADMIN})
        made = [await service.create(name=f"{t}-admin", scopes=scopes, tenant=t) for t in TENANTS]
        return {t: secret for t, (_, secret) in zip(TENANTS, made, strict=True)}

    keys = asyncio.run(make())
    with TestClient(app=create_app(container)) as client:
        yield Api(client, keys, clock)


def _batch(n: int) -> dict[str, Any]:
    return {"tasks": [BODY] * n}


def test_over_the_rate_is_a_429_with_retry_after_and_nothing_stored(api: Api) -> None:
    assert api.submit("acme", _batch(2)).status_code == 202
    assert api.submit("acme").status_code == 202
    refused = api.submit("acme")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["title"] == "Too Many Requests"
    assert "tenant 'acme' is over its quota of 2/s (burst 3)" in problem["detail"]
    batch = api.submit("acme", _batch(3))
    assert (batch.status_code, batch.headers["Retry-After"]) == (429, "2")
    assert len(api.ids("acme")) == 3
    api.clock.advance(0.5)
    assert api.submit("acme").status_code == 202


def test_a_batch_larger_than_the_burst_is_a_400_naming_the_field(api: Api) -> None:
    refused = api.submit("acme", _batch(4))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "tasks"
    assert "send at most 3 at once" in refused.json()["detail"]
    assert api.submit("acme", _batch(3)).status_code == 202  # the burst was not touched


def test_the_unfinished_quota_refuses_until_tasks_finish(api: Api) -> None:
    first = api.submit("globex").json()["id"]
    assert api.submit("globex").status_code == 202
    refused = api.submit("globex")
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")
    assert "at most 2 unfinished tasks" in refused.json()["detail"]
    headers = {"Authorization": f"Bearer {api.keys['globex']}"}
    assert api.client.post(f"/api/tasks/{first}/cancel", headers=headers).status_code == 200
    api.clock.advance(RECOUNT_SECONDS)
    assert api.submit("globex").status_code == 202
    assert api.submit("globex").status_code == 429
    assert len(api.ids("globex")) == 3


def test_a_replay_over_the_quota_is_answered_as_a_replay(api: Api) -> None:
    first = api.submit("acme", _batch(3), **{"Idempotency-Key": "order-7"})
    assert first.status_code == 202
    again = api.submit("acme", _batch(3), **{"Idempotency-Key": "order-7"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = api.submit("acme", _batch(3), **{"Idempotency-Key": "order-8"})
    assert other.status_code == 429
    reused = api.submit("acme", _batch(2), **{"Idempotency-Key": "order-7"})
    assert reused.status_code == 422  # another body under the same key, as without quotas


def test_other_tenants_are_untouched_and_unlimited_lifts_the_star_quota(api: Api) -> None:
    for _ in range(3):
        assert api.submit("acme").status_code == 202
    assert api.submit("acme").status_code == 429
    for tenant in (DEFAULT_TENANT, "initech"):
        for _ in range(5):
            assert api.submit(tenant).status_code == 202, tenant
        assert api.submit(tenant, _batch(100)).status_code == 202, tenant
