"""The key check's quick answer (``KeyCheck.admitted``) never admits what its full answer
(``KeyCheck.admit``) refuses, and settles the common requests on its own (decision 30)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskflow.adapters.memory_keys import InMemoryKeyStore
from taskflow.domain.keys import ANONYMOUS, Principal, Scope
from taskflow.domain.services.keys import KeyService
from taskflow.entrypoints.http.auth import PRINCIPAL, KeyCheck
from tests.clocks import FakeClock

PATHS = (
    "/api/tasks",
    "/api/tasks/",
    "/api/tasks/batch",
    "/api/tasks//",
    "/api/tasks/stats",
    "/api/tasks/0190f1a2-0000-7000-8000-000000000000/cancel",
    "/api/keys",
    "/api/queues",
    "/api/workers",
    "/metrics",
    "/health/live",
    "/schema/openapi.json",
    "/dashboard",
    "/dashboard/queues",
    "/dashboard/sign-in",
)
METHODS = ("GET", "HEAD", "POST", "DELETE", "OPTIONS")
SCOPE_SETS = [frozenset(c) for n in (1, 2) for c in itertools.combinations(Scope, n)]


def _keys() -> KeyService:
    tokens = (f"token{i:040d}" for i in itertools.count())
    return KeyService(
        store=InMemoryKeyStore(),
        clock=FakeClock(datetime(2026, 12, 2, tzinfo=UTC)),
        new_id=uuid.uuid4,
        token=lambda: next(tokens),
        monotonic=time.monotonic,
    )


def _request(method: str, path: str, secret: str | None) -> dict[str, Any]:
    headers = [(b"host", b"x")]
    if secret is not None:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    return {"type": "http", "method": method, "path": path, "headers": headers}


async def _refused(check: KeyCheck, request: dict[str, Any]) -> tuple[bool, Principal | None]:
    answers: list[Any] = []

    async def send(message: Any) -> None:
        answers.append(message)

    admitted = await check.admit(request, send)
    assert admitted == (not answers)  # a refusal is answered, an admission is not
    return admitted, (request.get("state") or {}).get(PRINCIPAL)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    scopes=st.sampled_from(SCOPE_SETS),
    tenant=st.sampled_from(["default", "acme"]),
    sends=st.sampled_from(["its key", "a wrong key", "no key"]),
    metrics_auth=st.booleans(),
)
def test_the_quick_answer_admits_only_what_the_full_check_admits(
    method: str, path: str, scopes: frozenset[Scope], tenant: str, sends: str, metrics_auth: bool
) -> None:
    async def scenario() -> None:
        keys = _keys()
        _, secret = await keys.create(name="k", scopes=scopes, tenant=tenant)
        presented = {"its key": secret, "a wrong key": "w" * 45, "no key": None}[sends]
        check = KeyCheck(keys, metrics_auth=metrics_auth)
        await _refused(check, _request("GET", "/api/tasks", presented))  # warms the caches
        quick = _request(method, path, presented)
        if check.admitted(quick):
            full = _request(method, path, presented)
            admitted, principal = await _refused(check, full)
            assert admitted
            assert (quick.get("state") or {}).get(PRINCIPAL) == principal

    asyncio.run(scenario())


def test_a_submission_with_a_known_key_is_settled_without_a_coroutine() -> None:
    async def scenario() -> None:
        keys = _keys()
        _, secret = await keys.create(name="ci", scopes=frozenset({Scope.SUBMIT}), tenant="acme")
        check = KeyCheck(keys, metrics_auth=False)
        request = _request("POST", "/api/tasks", secret)
        assert not check.admitted(request)  # the key's verdict is not cached yet
        assert (await _refused(check, request))[0]
        again = _request("POST", "/api/tasks", secret)
        assert check.admitted(again)
        assert again["state"][PRINCIPAL].tenant == "acme"
        assert not check.admitted(_request("POST", "/api/tasks/x/cancel", secret))  # a 403
        assert not check.admitted(_request("POST", "/api/tasks", None))  # a 401

    asyncio.run(scenario())


def test_an_open_api_admits_at_once_while_its_check_for_keys_is_fresh() -> None:
    async def scenario() -> None:
        check = KeyCheck(_keys(), metrics_auth=False)
        request = _request("POST", "/api/tasks", None)
        assert not check.admitted(request)  # never asked whether keys exist
        assert await _refused(check, request) == (True, None)
        assert check.admitted(_request("POST", "/api/tasks", None))
        assert principal_is_anonymous(_request("GET", "/api/tasks", None))

    def principal_is_anonymous(request: dict[str, Any]) -> bool:
        return (request.get("state") or {}).get(PRINCIPAL, ANONYMOUS) is ANONYMOUS

    asyncio.run(scenario())
