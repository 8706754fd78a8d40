"""Tenant isolation over HTTP (decision 36), on the in-memory stores: every pair of tenants.

Each of three tenants (the default one and two named) submits a task that stays PENDING and one
it cancels, under the same Idempotency-Key. Every other tenant's key then finds nothing of them:
each route that names a task answers 404, exactly as for an id never used, and no list, count,
bulk retry or dashboard page shows or touches them. The owner's key, on the same routes, does.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets as secrets_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from taskflow.containers import Container
from taskflow.domain.keys import DEFAULT_TENANT, Scope
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.dashboard.csrf import COOKIE as CSRF_COOKIE
from taskflow.entrypoints.http.dashboard.csrf import FIELD as CSRF_FIELD
from taskflow.entrypoints.loading import load_registry
from tests.unit.test_http_auth import _container as auth_container

TENANTS = [DEFAULT_TENANT, "acme", "globex"]
PAIRS = list(itertools.permutations(TENANTS, 2))
HOST = "testserver.local"
KEY = "order-42"  # every tenant's Idempotency-Key: each gets its own task
BODY = {"type": "debug.echo", "payload": {"n": 1}}
#: The routes that name one task: (method, path template, what the owner gets).
BY_ID = [
    ("GET", "/api/tasks/{id}", 200),
    ("GET", "/api/tasks/{id}/attempts", 200),
    ("GET", "/api/tasks/{id}/deliveries", 200),
    ("POST", "/api/tasks/{id}/retry", 202),  # of the cancelled task
    ("POST", "/api/tasks/{id}/cancel", 200),  # of the pending task
    ("GET", "/dashboard/tasks/{id}", 200),
    ("POST", "/dashboard/tasks/{id}/retry", 303),
    ("POST", "/dashboard/tasks/{id}/cancel", 303),
]


@dataclass
class World:
    client: TestClient[Litestar]
    keys: dict[str, str]  # tenant → its admin key
    pending: dict[str, str] = field(default_factory=dict)  # tenant → a PENDING task's id
    cancelled: dict[str, str] = field(default_factory=dict)

    def call(
        self, tenant: str, method: str, path: str, json: Any = None, **options: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}", "Origin": f"http://{HOST}"}
        headers.update(options.pop("headers", {}))
        if method == "GET":
            return self.client.get(path, headers=headers, follow_redirects=False, **options)
        if path.startswith("/dashboard"):  # a form of the dashboard, with its CSRF token
            token = secrets_module.token_urlsafe(32)
            self.client.cookies.set(CSRF_COOKIE, token)
            data = {CSRF_FIELD: token}
            return self.client.post(path, data=data, headers=headers, follow_redirects=False)
        return self.client.post(path, json=json, headers=headers)


def _container() -> Container:
    registry = load_registry(None, debug_tasks=True)
    for tenant in TENANTS:
        registry.periodic(
            f"{tenant}-hourly", type="debug.echo", every=timedelta(hours=1), tenant=tenant
        )
    return auth_container(registry)


def _keys(container: Container) -> dict[str, str]:
    service = container.key_service()

    async def make() -> dict[str, str]:
        made = {}
        for tenant in TENANTS:
            _, secret = await service.create(
                name=f"{tenant}-admin", scopes=frozenset({Scope.ADMIN}), tenant=tenant
            )
            made[tenant] = secret
        return made

    return asyncio.run(make())


@pytest.fixture
def world() -> Iterator[World]:
    container = _container()
    keys = _keys(container)
    with TestClient(app=create_app(container), base_url=f"http://{HOST}") as client:
        made = World(client, keys)
        for tenant in TENANTS:
            for kind in ("pending", "cancelled"):
                headers = {"Idempotency-Key": f"{KEY}-{kind}"}
                answer = made.call(tenant, "POST", "/api/tasks", BODY, headers=headers)
                assert answer.status_code == 202, answer.text
                getattr(made, kind)[tenant] = answer.json()["id"]
            cancel = f"/api/tasks/{made.cancelled[tenant]}/cancel"
            assert made.call(tenant, "POST", cancel).status_code == 200
        yield made


def _path(template: str, world: World, owner: str) -> str:
    pending = "cancel" in template or "retry" not in template
    task_id = (world.pending if pending else world.cancelled)[owner]
    return template.replace("{id}", task_id)


@pytest.mark.parametrize(("owner", "other"), PAIRS)
def test_another_tenants_task_answers_404_on_every_route_that_names_it(
    world: World, owner: str, other: str
) -> None:
    never_used = "0190a3b4-0000-7000-8000-000000000000"
    for method, template, _ in BY_ID:
        path = _path(template, world, owner)
        refused = world.call(other, method, path)
        assert refused.status_code == 404, (method, path, refused.text)
        unknown = world.call(other, method, template.replace("{id}", never_used))
        if path.startswith("/api"):  # the same words as for an id nobody ever used
            assert (
                refused.json()["detail"].replace(path.split("/")[3], never_used)
                == (unknown.json()["detail"])
            )
    for method, template, status in BY_ID:  # and nothing of it changed meanwhile
        path = _path(template, world, owner)
        answered = world.call(owner, method, path).status_code
        # A second retry or cancel of the same task finds it changed already: 409.
        assert answered == status or (answered == 409 and method == "POST"), (method, path)


@pytest.mark.parametrize(("owner", "other"), PAIRS)
def test_another_tenants_tasks_are_in_no_list_count_bulk_retry_or_page(
    world: World, owner: str, other: str
) -> None:
    theirs = {world.pending[owner], world.cancelled[owner]}
    listed = world.call(other, "GET", "/api/tasks", params={"limit": 100}).json()["items"]
    assert {t["id"] for t in listed} == {world.pending[other], world.cancelled[other]}
    counts = world.call(other, "GET", "/api/tasks/stats").json()["items"]
    assert sum(c["count"] for c in counts) == 2
    retried = world.call(other, "POST", "/api/tasks/retry", {"status": ["CANCELLED"]}).json()
    assert retried["ids"] == [world.cancelled[other]]
    assert world.call(owner, "GET", f"/api/tasks/{world.cancelled[owner]}").json()["status"] == (
        "CANCELLED"
    )
    for page in ("/dashboard/tasks", "/dashboard/", "/dashboard/tasks?status=CANCELLED"):
        text = world.call(other, "GET", page).text
        assert not any(task_id in text for task_id in theirs), page
    lookup = world.call(other, "GET", f"/dashboard/lookup?id={world.pending[owner]}")
    assert world.call(other, "GET", lookup.headers["location"]).status_code == 404


def test_one_idempotency_key_makes_one_task_per_tenant_and_replays_within_it(
    world: World,
) -> None:
    assert len(set(world.pending.values())) == len(TENANTS)
    for tenant in TENANTS:
        again = world.call(
            tenant, "POST", "/api/tasks", BODY, headers={"Idempotency-Key": f"{KEY}-pending"}
        )
        assert again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == world.pending[tenant]


@pytest.mark.parametrize(("owner", "other"), PAIRS)
def test_a_schedule_is_seen_and_paused_by_its_own_tenant_only(
    world: World, owner: str, other: str
) -> None:
    names = [s["name"] for s in world.call(other, "GET", "/api/schedules").json()["items"]]
    assert names == [f"{other}-hourly"]
    assert f"{owner}-hourly" not in world.call(other, "GET", "/dashboard/schedules").text
    for verb in ("pause", "resume"):
        path = f"/api/schedules/{owner}-hourly/{verb}"
        assert world.call(other, "POST", path).status_code == 404
        assert world.call(owner, "POST", path).status_code == 200
        form = f"/dashboard/schedules/{owner}-hourly/{verb}"
        assert world.call(other, "POST", form).status_code == 404


@pytest.mark.parametrize("tenant", ["acme", "globex"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/queues"),
        ("GET", "/api/workers"),
        ("GET", "/metrics"),
        ("GET", "/dashboard/queues"),
        ("GET", "/dashboard/workers"),
        ("POST", "/api/queues/default/pause"),
        ("POST", "/dashboard/queues/default/pause"),
    ],
)
def test_the_fleet_is_the_operators_only(world: World, tenant: str, method: str, path: str) -> None:
    refused = world.call(tenant, method, path)
    assert refused.status_code == 403
    assert "operator" in refused.json()["detail"]
    assert world.call(DEFAULT_TENANT, method, path).status_code in (200, 303)
    assert 'href="/dashboard/queues"' not in world.call(tenant, "GET", "/dashboard/").text


def test_a_tenants_admin_manages_its_own_tenants_keys_and_the_operator_every_tenants(
    world: World,
) -> None:
    def tenants_listed(tenant: str) -> set[str]:
        return {k["tenant"] for k in world.call(tenant, "GET", "/api/keys").json()["items"]}

    assert tenants_listed("acme") == {"acme"}
    assert tenants_listed(DEFAULT_TENANT) == set(TENANTS)
    made = world.call("acme", "POST", "/api/keys", {"name": "ci", "scopes": ["submit"]})
    assert made.status_code == 201
    assert made.json()["tenant"] == "acme"
    foreign = {"name": "x", "scopes": ["read"], "tenant": "globex"}
    refused = world.call("acme", "POST", "/api/keys", foreign)
    assert refused.status_code == 403
    assert "own tenant" in refused.json()["detail"]
    provisioned = world.call(DEFAULT_TENANT, "POST", "/api/keys", foreign)
    assert provisioned.status_code == 201
    assert provisioned.json()["tenant"] == "globex"
    globex_key = provisioned.json()["id"]
    headers = {"Authorization": f"Bearer {world.keys['acme']}"}
    assert world.client.delete(f"/api/keys/{globex_key}", headers=headers).status_code == 404
    headers = {"Authorization": f"Bearer {world.keys['globex']}"}
    assert world.client.delete(f"/api/keys/{globex_key}", headers=headers).status_code == 200


def test_no_metric_names_a_tenant_or_a_task(world: World) -> None:
    metrics = world.call(DEFAULT_TENANT, "GET", "/metrics")
    assert metrics.status_code == 200
    assert "taskflow_tasks_submitted_total" in metrics.text  # the tenants' submissions counted
    for tenant in ("acme", "globex"):
        assert tenant not in metrics.text
        assert world.pending[tenant] not in metrics.text
