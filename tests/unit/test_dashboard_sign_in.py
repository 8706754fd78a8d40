"""Signing in to the dashboard with an API key (decision 35), through Litestar's test client on
the in-memory stores; the key service's clocks are fakes the tests move.

A browser doing the same against a real ``taskflow api`` is in
tests/integration/test_dashboard_sign_in_browser.py.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from taskflow.containers import Container
from taskflow.domain.keys import Scope
from taskflow.domain.services.keys import KeyService
from taskflow.domain.sessions import SESSION_SECONDS, read_session
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.dashboard.csrf import FIELD
from taskflow.entrypoints.http.sessions import COOKIE, TLS_COOKIE
from tests.clocks import FakeClock
from tests.unit.test_dashboard_security import assert_strict_cookie
from tests.unit.test_http_auth import _container

HOST = "testserver.local"
ORIGIN = {"Origin": f"http://{HOST}"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    client: TestClient[Litestar]
    container: Container
    clock: FakeClock
    ticker: Ticker
    secrets: dict[str, str]
    ids: dict[str, uuid.UUID]

    def revoke(self, name: str) -> None:
        asyncio.run(self.container.key_service().revoke(self.ids[name]))

    def submit(self) -> str:
        headers = {"Authorization": f"Bearer {self.secrets['admin']}"}
        body = {"type": "debug.echo", "payload": {}}
        return str(self.client.post("/api/tasks", json=body, headers=headers).json()["id"])

    def status(self, task_id: str) -> str:
        headers = {"Authorization": f"Bearer {self.secrets['admin']}"}
        return str(self.client.get(f"/api/tasks/{task_id}", headers=headers).json()["status"])


def _stack(*, with_keys: bool = True, **settings: object) -> Iterator[Stack]:
    container = _container(**settings)
    clock, ticker = FakeClock(datetime(2026, 12, 1, tzinfo=UTC)), Ticker()
    tokens = (f"token{i:040d}" for i in itertools.count())
    container.key_service.override(
        providers.Singleton(
            KeyService,
            store=container.key_store,
            clock=clock,
            new_id=uuid.uuid4,
            token=lambda: next(tokens),
            monotonic=ticker,
        )
    )
    secrets: dict[str, str] = {}
    ids: dict[str, uuid.UUID] = {}

    async def make() -> None:
        for name in ("submit", "read", "admin", "other") if with_keys else ():
            scope = Scope.ADMIN if name == "other" else Scope(name)
            key, secrets[name] = await container.key_service().create(
                name=name, scopes=frozenset({scope}), tenant="default"
            )
            ids[name] = key.id

    asyncio.run(make())
    with TestClient(app=create_app(container), base_url=f"http://{HOST}") as client:
        yield Stack(client, container, clock, ticker, secrets, ids)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from _stack()


def _form_token(client: TestClient[Litestar], base: str = "") -> str:
    page = client.get(f"{base}/dashboard/sign-in")
    assert page.status_code == 200, page.text
    match = _TOKEN.search(page.text)
    assert match is not None, page.text
    return match.group(1)


def sign_in(
    client: TestClient[Litestar], secret: str, *, next_path: str = "", base: str = ""
) -> Any:
    form = {FIELD: _form_token(client, base), "key": secret, "next": next_path}
    origin = {"Origin": base or f"http://{HOST}"}
    return client.post(
        f"{base}/dashboard/sign-in", data=form, headers=origin, follow_redirects=False
    )


def _act(client: TestClient[Litestar], path: str) -> Any:
    form = {FIELD: _form_token(client)}
    return client.post(path, data=form, headers=ORIGIN, follow_redirects=False)


def test_without_a_session_a_page_sends_the_browser_to_the_sign_in_form(stack: Stack) -> None:
    client = stack.client
    asked = client.get("/dashboard/tasks?status=FAILED", follow_redirects=False)
    assert asked.status_code == 303
    assert (
        asked.headers["location"]
        == "/dashboard/sign-in?next=%2Fdashboard%2Ftasks%3Fstatus%3DFAILED"
    )
    form = client.get(asked.headers["location"])
    assert form.status_code == 200
    assert 'action="/dashboard/sign-in"' in form.text
    assert 'name="key" type="password"' in form.text
    assert 'name="next" value="/dashboard/tasks?status=FAILED"' in form.text
    assert _TOKEN.search(form.text) is not None
    assert client.get("/dashboard/static/dashboard.css").status_code == 200  # its style
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert asked.headers["cache-control"] == form.headers["cache-control"] == "no-store"
    # An action without a session goes to the form too; the API still answers problems.
    assert _act(client, "/dashboard/queues/default/pause").status_code in (303, 403)
    refused = client.get("/api/tasks")
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("scope", ["read", "admin"])
def test_a_read_or_admin_key_opens_a_session_on_the_page_asked_for(
    stack: Stack, scope: str
) -> None:
    client, secret = stack.client, stack.secrets[scope]
    answer = sign_in(client, secret, next_path="/dashboard/queues")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/dashboard/queues"
    session = client.cookies[COOKIE]
    assert secret not in session
    assert secret[3:] not in session
    parsed = read_session(session)
    assert parsed is not None
    assert parsed.key_id == stack.ids[scope]
    page = client.get("/dashboard/queues", follow_redirects=False)
    assert page.status_code == 200
    assert 'action="/dashboard/sign-out"' in page.text


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("submit", 403, "neither the read nor the admin scope"),
        ("tf_wrong", 401, "wrong or revoked"),
        ("revoked", 401, "wrong or revoked"),
        ("", 401, "wrong or revoked"),
    ],
)
def test_any_other_key_gets_the_form_again_and_no_session(
    stack: Stack, key: str, status: int, says: str
) -> None:
    if key == "revoked":
        stack.revoke("other")
        key = "other"
    secret = stack.secrets.get(key, key)
    answer = sign_in(stack.client, secret, next_path="/dashboard/tasks")
    assert answer.status_code == status
    assert says in answer.text
    assert 'action="/dashboard/sign-in"' in answer.text
    assert COOKIE not in stack.client.cookies
    assert stack.client.get("/dashboard/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("base", "name", "secure"),
    [(f"http://{HOST}", COOKIE, False), (f"https://{HOST}", TLS_COOKIE, True)],
)
def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(
    stack: Stack, base: str, name: str, secure: bool
) -> None:
    answer = sign_in(stack.client, stack.secrets["read"], base=base)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "session" in c)
    assert_strict_cookie(cookie, name, secure=secure)
    assert "max-age" not in cookie.lower()  # gone with the browser; the value expires anyway
    assert stack.client.get(f"{base}/dashboard/", follow_redirects=False).status_code == 200


def test_the_session_opens_the_dashboard_never_the_api(stack: Stack) -> None:
    client = stack.client
    sign_in(client, stack.secrets["admin"])
    assert client.get("/dashboard/tasks", follow_redirects=False).status_code == 200
    assert client.get("/api/tasks").status_code == 401
    body = {"type": "debug.echo", "payload": {}}
    assert client.post("/api/tasks", json=body, headers=ORIGIN).status_code == 401
    assert client.get("/api/keys").status_code == 401


def test_a_read_session_sees_the_pages_and_only_an_admin_session_acts(stack: Stack) -> None:
    task_id = stack.submit()
    client = stack.client
    sign_in(client, stack.secrets["read"])
    page = client.get(f"/dashboard/tasks/{task_id}")
    assert page.status_code == 200
    assert f"/dashboard/tasks/{task_id}/cancel" not in page.text  # no button it cannot use
    refused = _act(client, f"/dashboard/tasks/{task_id}/cancel")
    assert refused.status_code == 403
    assert "admin" in refused.text
    assert stack.status(task_id) == "PENDING"
    client.cookies.clear()
    sign_in(client, stack.secrets["admin"])
    assert f"/dashboard/tasks/{task_id}/cancel" in client.get(f"/dashboard/tasks/{task_id}").text
    assert _act(client, f"/dashboard/tasks/{task_id}/cancel").status_code == 303
    assert stack.status(task_id) == "CANCELLED"


def test_revoking_the_key_ends_its_sessions_once_the_cache_turns(stack: Stack) -> None:
    client = stack.client
    sign_in(client, stack.secrets["admin"])
    assert client.get("/dashboard/", follow_redirects=False).status_code == 200
    stack.revoke("admin")
    stack.ticker.now += 0.6  # past the 0.5 s of a cached verdict
    answer = client.get("/dashboard/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/dashboard/sign-in")


def _tampered(session: str, other_id: uuid.UUID) -> list[str]:
    key_id, expires, tag = session.split(".")
    flipped = ("A" if tag[0] != "A" else "B") + tag[1:]
    return [
        f"{key_id}.{expires}.{flipped}",
        f"{key_id}.{int(expires) + 3600}.{tag}",  # a longer life
        f"{other_id}.{expires}.{tag}",  # another key's id
        f"{key_id}.{expires}.",
        "not-a-session",
        "x" * 500,
    ]


def test_a_tampered_session_is_refused(stack: Stack) -> None:
    client = stack.client
    sign_in(client, stack.secrets["read"])
    session = client.cookies[COOKIE]
    for forged in _tampered(session, stack.ids["admin"]):
        client.cookies.clear()
        client.cookies.set(COOKIE, forged)
        assert client.get("/dashboard/", follow_redirects=False).status_code == 303, forged
    client.cookies.clear()
    client.cookies.set(COOKIE, session)
    assert client.get("/dashboard/", follow_redirects=False).status_code == 200


def test_a_session_expires(stack: Stack) -> None:
    client = stack.client
    sign_in(client, stack.secrets["read"])
    stack.clock.advance(SESSION_SECONDS - 1)
    assert client.get("/dashboard/", follow_redirects=False).status_code == 200
    stack.clock.advance(1)
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "wanted",
    [
        "//evil.example/dashboard/",
        "https://evil.example/dashboard/",
        "/dashboard//evil.example",
        "/\\evil.example",
        "/dashboard/\\\\evil.example",
        "/api/keys",
        "/dashboardx",
        "/dashboard/\r\nSet-Cookie: a=b",
    ],
)
def test_sign_in_never_redirects_elsewhere(stack: Stack, wanted: str) -> None:
    answer = sign_in(stack.client, stack.secrets["read"], next_path=wanted)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/"


def test_signing_in_or_out_needs_the_form_token(stack: Stack) -> None:
    client = stack.client
    form = {"key": stack.secrets["admin"], "next": "/dashboard/"}
    refused = client.post("/dashboard/sign-in", data=form, headers=ORIGIN)
    assert refused.status_code == 403  # another site cannot sign a browser in to its key
    assert COOKIE not in client.cookies
    sign_in(client, stack.secrets["admin"])
    elsewhere = {"Origin": "https://evil.example"}
    assert client.post("/dashboard/sign-out", data={}, headers=elsewhere).status_code == 403
    assert client.get("/dashboard/", follow_redirects=False).status_code == 200


def test_signing_out_clears_the_cookie(stack: Stack) -> None:
    client = stack.client
    sign_in(client, stack.secrets["admin"])
    answer = _act(client, "/dashboard/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in"
    cleared = next(c for c in answer.headers.get_list("set-cookie") if "session" in c)
    assert cleared.startswith(f"{COOKIE}=")
    assert "max-age=0" in cleared.lower()
    assert COOKIE not in client.cookies
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("settings", [{"with_keys": False}, {"auth": "disabled"}])
def test_an_open_dashboard_needs_no_sign_in(settings: dict[str, Any]) -> None:
    for stack in _stack(**settings):
        client = stack.client
        assert client.get("/dashboard/", follow_redirects=False).status_code == 200
        moved = client.get("/dashboard/sign-in?next=/dashboard/queues", follow_redirects=False)
        assert moved.status_code == 303
        assert moved.headers["location"] == "/dashboard/queues"
