"""A worker's own HTTP port (``TASKFLOW_WORKER_HTTP_PORT``) on the in-memory stores: its
``/metrics`` asks for a key as the API's does (docs/security.md); its health stays open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.containers import Container
from taskflow.domain.keys import Scope
from taskflow.entrypoints.worker_http import worker_app
from tests.unit.test_exposure import DownKeyStore
from tests.unit.test_http_auth import _container, _key

Client = TestClient  # type: ignore[type-arg]


@contextlib.contextmanager
def serving(container: Container) -> Iterator[Client]:
    with TestClient(app=worker_app(container)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def locked() -> Container:
    """``TASKFLOW_METRICS_AUTH=true``, the stores in memory."""
    return _container(metrics_auth=True)


@pytest.fixture
def client(locked: Container) -> Iterator[Client]:
    with serving(locked) as client:
        yield client


def test_metrics_need_a_key_with_the_read_scope_once_one_exists(
    locked: Container, client: Client
) -> None:
    reader = _key(locked, Scope.READ)
    submitter = _key(locked, Scope.SUBMIT)
    revoked = _key(locked, Scope.ADMIN, revoked=True)
    admin = _key(locked, Scope.ADMIN)

    for headers in ({}, bearer("tf_wrong"), bearer(revoked), {"Authorization": reader}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.headers["content-type"] == "application/problem+json"
        assert reader not in refused.text
    lacking = client.get("/metrics", headers=bearer(submitter))
    assert lacking.status_code == 403
    assert lacking.json()["detail"] == "the key 'k' lacks the read scope this route needs"
    for key in (reader, admin):
        answered = client.get("/metrics", headers=bearer(key))
        assert answered.status_code == 200
        assert "taskflow_tasks_succeeded_total" in answered.text


def test_health_stays_open_when_metrics_need_a_key(locked: Container, client: Client) -> None:
    _key(locked, Scope.READ)
    assert client.get("/metrics").status_code == 401
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").json()["status"] == "ok"


OPEN = {
    "no-key-yet": ({"metrics_auth": True}, None),
    "metrics-auth-off": ({"metrics_auth": False}, Scope.READ),
    "auth-disabled": ({"metrics_auth": True, "auth": "disabled"}, Scope.READ),
}


@pytest.mark.parametrize(("settings", "key"), OPEN.values(), ids=OPEN.keys())
def test_metrics_are_open_unless_they_ask_for_a_key(
    settings: dict[str, Any], key: Scope | None
) -> None:
    container = _container(**settings)
    if key is not None:
        _key(container, key)
    with serving(container) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/health/live").status_code == 200


def test_a_key_store_outage_is_a_503_to_retry_and_health_still_answers() -> None:
    container = _container(metrics_auth=True)
    container.key_store.override(providers.Singleton(DownKeyStore))
    with serving(container) as client:
        answered = client.get("/metrics")
        assert answered.status_code == 503
        assert answered.headers["retry-after"] == "5"
        assert "connection refused" in answered.json()["detail"]
        assert client.get("/health/live").status_code == 200


def test_a_named_tenants_key_is_refused_the_workers_metrics(
    locked: Container, client: Client
) -> None:
    async def make() -> str:
        _, secret = await locked.key_service().create(
            name="acme-reader", scopes=frozenset({Scope.READ}), tenant="acme"
        )
        return secret

    tenant_reader = asyncio.run(make())
    refused = client.get("/metrics", headers=bearer(tenant_reader))
    assert refused.status_code == 403
    assert "operator" in refused.json()["detail"]
    assert client.get("/metrics", headers=bearer(_key(locked, Scope.READ))).status_code == 200
