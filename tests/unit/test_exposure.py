"""Whether `taskflow api` may start as configured (decision 30), and how its key check answers,
the store answering or not."""

from __future__ import annotations

import logging

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from taskflow.adapters.memory_keys import InMemoryKeyStore
from taskflow.domain.errors import StoreUnavailable
from taskflow.domain.keys import Scope
from taskflow.entrypoints.errors import CannotStart
from taskflow.entrypoints.exposure import check_exposure
from taskflow.entrypoints.http.app import create_app
from tests.unit.test_http_auth import _container


class DownKeyStore(InMemoryKeyStore):
    async def any_exist(self) -> bool:
        raise StoreUnavailable("task store unavailable: connection refused")


def down_container() -> object:
    built = _container()
    built.key_store.override(providers.Singleton(DownKeyStore))
    return built


async def test_on_loopback_an_unreachable_store_is_no_reason_not_to_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        await check_exposure(down_container(), "127.0.0.1")  # type: ignore[arg-type]
    assert "could not read the API keys at start" in caplog.text


async def test_beyond_loopback_it_is_when_no_one_can_tell_whether_a_key_exists() -> None:
    with pytest.raises(CannotStart, match="cannot tell whether an API key exists"):
        await check_exposure(down_container(), "0.0.0.0")  # type: ignore[arg-type]


async def test_beyond_loopback_with_no_key_it_refuses_and_with_one_it_starts() -> None:
    container = _container()
    with pytest.raises(CannotStart, match="no API key exists"):
        await check_exposure(container, "0.0.0.0")
    await container.key_service().create(name="ops", scopes=frozenset({Scope.ADMIN}), tenant="t")
    fresh = _container()  # a process started after the key was made
    fresh.key_store.override(providers.Object(container.key_store()))
    await check_exposure(fresh, "0.0.0.0")


def test_a_request_the_key_check_cannot_decide_is_a_503_to_retry_not_a_500() -> None:
    # The check runs outside Litestar's exception handlers: it answers the outage itself.
    with TestClient(app=create_app(down_container())) as client:  # type: ignore[arg-type]
        answer = client.post("/api/tasks", json={"type": "debug.echo", "payload": {}})
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.headers["content-type"] == "application/problem+json"
        assert "connection refused" in answer.json()["detail"]
        assert client.get("/health/live").status_code == 200  # open routes ask nothing
