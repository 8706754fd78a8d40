"""Authentication through Litestar's test client, on the in-memory stores: every route and scope."""

from __future__ import annotations

import asyncio
import re
import secrets as secrets_module
import uuid
from collections.abc import Iterator

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from taskflow.adapters.memory import (
    InMemoryScheduleStore,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
)
from taskflow.adapters.memory_fleet import InMemoryQueueGauge, InMemoryQueueStore
from taskflow.config import ConfigError, Settings
from taskflow.containers import Container, build_container
from taskflow.domain.keys import Scope
from taskflow.entrypoints.exposure import is_loopback
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.auth import bearer_token
from taskflow.entrypoints.http.dashboard.csrf import COOKIE as CSRF_COOKIE
from taskflow.entrypoints.http.dashboard.csrf import FIELD as CSRF_FIELD
from taskflow.entrypoints.loading import load_registry
from taskflow.registry import Registry

SUBMIT, READ, ADMIN = Scope.SUBMIT, Scope.READ, Scope.ADMIN
#: What each protected route asks of a key (SPEC, "Authentication").
ROUTES: dict[tuple[str, str], Scope] = {
    ("POST", "/api/tasks"): SUBMIT,
    ("POST", "/api/tasks/batch"): SUBMIT,
    ("GET", "/api/tasks"): READ,
    ("GET", "/api/tasks/stats"): READ,
    ("GET", "/api/tasks/{task_id:str}"): READ,
    ("GET", "/api/tasks/{task_id:str}/attempts"): READ,
    ("GET", "/api/tasks/{task_id:str}/deliveries"): READ,
    ("GET", "/api/schedules"): READ,
    ("GET", "/api/queues"): READ,
    ("GET", "/api/workers"): READ,
    ("GET", "/api/types"): READ,
    ("POST", "/api/tasks/{task_id:str}/cancel"): ADMIN,
    ("POST", "/api/tasks/{task_id:str}/retry"): ADMIN,
    ("POST", "/api/tasks/retry"): ADMIN,
    ("POST", "/api/schedules/{name:str}/pause"): ADMIN,
    ("POST", "/api/schedules/{name:str}/resume"): ADMIN,
    ("POST", "/api/queues/{name:str}/pause"): ADMIN,
    ("POST", "/api/queues/{name:str}/resume"): ADMIN,
    ("GET", "/dashboard"): READ,
    ("GET", "/dashboard/lookup"): READ,
    ("GET", "/dashboard/queues"): READ,
    ("GET", "/dashboard/schedules"): READ,
    ("GET", "/dashboard/tasks"): READ,
    ("GET", "/dashboard/tasks/{raw_id:str}"): READ,
    ("GET", "/dashboard/workers"): READ,
    ("POST", "/dashboard/tasks/{raw_id:str}/cancel"): ADMIN,
    ("POST", "/dashboard/tasks/{raw_id:str}/retry"): ADMIN,
    ("POST", "/dashboard/queues/{name:str}/{verb:str}"): ADMIN,
    ("POST", "/dashboard/schedules/{name:str}/{verb:str}"): ADMIN,
    ("GET", "/metrics"): READ,  # with TASKFLOW_METRICS_AUTH=true
    ("GET", "/api/keys"): ADMIN,
    ("POST", "/api/keys"): ADMIN,
    ("DELETE", "/api/keys/{key_id:str}"): ADMIN,
}
OPEN = ["/health/live", "/health/ready", "/schema/openapi.json"]
#: What a browser reaches before signing in to the dashboard (decision 35).
SIGNED_OUT = {
    ("GET", "/dashboard/sign-in"),
    ("POST", "/dashboard/sign-in"),
    ("POST", "/dashboard/sign-out"),
    ("GET", "/dashboard/static/{file_path:path}"),
}
SAMPLES = {
    "task_id": str(uuid.UUID(int=7)),
    "raw_id": str(uuid.UUID(int=7)),
    "name": "default",
    "verb": "pause",
    "file_path": "dashboard.css",
    "key_id": str(uuid.UUID(int=9)),
}
BODY = {"type": "debug.echo", "payload": {}}
HOST = "testserver.local"


def _path(template: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLES[m.group(1)], template)


def _container(registry: Registry | None = None, **settings: object) -> Container:
    built = build_container(
        Settings(**{"redis_url": None, "metrics_auth": True, **settings}),  # type: ignore[arg-type]
        registry or load_registry(None, debug_tasks=True),
    )
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    built.queue_gauge.override(providers.Singleton(InMemoryQueueGauge, built.queue, built.clock))
    built.queue_store.override(providers.Singleton(InMemoryQueueStore, built.repository))
    built.schedule_store.override(providers.Singleton(InMemoryScheduleStore, built.repository))
    return built


def _key(container: Container, *scopes: Scope, revoked: bool = False) -> str:
    keys = container.key_service()

    async def make() -> str:
        key, secret = await keys.create(name="k", scopes=frozenset(scopes), tenant="default")
        if revoked:
            await keys.revoke(key.id)
        return secret

    return asyncio.run(make())


@pytest.fixture(scope="module")
def keyed() -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    container = _container()
    secrets = {
        "submit": _key(container, SUBMIT),
        "read": _key(container, READ),
        "admin": _key(container, ADMIN),
        "revoked": _key(container, ADMIN, revoked=True),
    }
    with TestClient(app=create_app(container), base_url=f"http://{HOST}") as client:
        yield client, secrets


def _call(client: TestClient[Litestar], method: str, template: str, key: str | None) -> int:
    headers = {"Origin": f"http://{HOST}"}  # the dashboard's actions check it
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if method == "GET":
        return client.get(_path(template), headers=headers, follow_redirects=False).status_code
    if method == "DELETE":
        return client.delete(_path(template), headers=headers).status_code
    if template.startswith("/dashboard"):  # a form of the dashboard, with its CSRF token
        token = secrets_module.token_urlsafe(32)
        client.cookies.set(CSRF_COOKIE, token)
        form = {CSRF_FIELD: token}
        answer = client.post(_path(template), data=form, headers=headers, follow_redirects=False)
        return answer.status_code
    return client.post(_path(template), json=BODY, headers=headers).status_code


def test_the_table_names_every_protected_route() -> None:
    app = create_app(_container())
    served = {
        (method, route.path)
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        for method in getattr(handler, "http_methods", ())
        if method in ("GET", "POST", "DELETE", "PUT", "PATCH")
        and route.path.startswith(("/api", "/dashboard", "/metrics"))
    }
    assert served == set(ROUTES) | SIGNED_OUT


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES))
def test_a_wrong_missing_or_revoked_key_is_401(
    keyed: tuple[TestClient[Litestar], dict[str, str]], method: str, template: str
) -> None:
    client, secrets = keyed
    for key in (None, "tf_not-a-key", secrets["revoked"]):
        # A browser without a key or a session is sent to the dashboard's sign-in form.
        signing_in = key is None and template.startswith("/dashboard")
        assert _call(client, method, template, key) == (303 if signing_in else 401), key


@pytest.mark.parametrize(("method", "template"), sorted(ROUTES))
def test_each_route_needs_its_scope(
    keyed: tuple[TestClient[Litestar], dict[str, str]], method: str, template: str
) -> None:
    client, secrets = keyed
    needed = ROUTES[(method, template)]
    for scope in ("submit", "read", "admin"):
        status = _call(client, method, template, secrets[scope])
        if scope == needed or scope == "admin":
            assert status not in (401, 403), scope
        else:
            assert status == 403, scope


@pytest.mark.parametrize("path", OPEN)
def test_health_and_the_api_description_stay_open(
    keyed: tuple[TestClient[Litestar], dict[str, str]], path: str
) -> None:
    client, _ = keyed
    assert client.get(path).status_code == 200


def test_the_sign_in_form_and_the_dashboard_files_need_no_key(
    keyed: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    client, _ = keyed
    assert client.get("/dashboard/sign-in").status_code == 200
    assert client.get(_path("/dashboard/static/{file_path:path}")).status_code == 200


def test_401_is_a_problem_with_a_bearer_challenge_and_403_names_the_scope(
    keyed: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    client, secrets = keyed
    refused = client.get("/api/tasks", headers={"Authorization": "Bearer tf_secret-guess"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "tf_secret-guess" not in refused.text
    denied = client.post(
        "/api/tasks", json=BODY, headers={"Authorization": f"Bearer {secrets['read']}"}
    )
    assert denied.status_code == 403
    assert "submit" in denied.json()["detail"]


def test_without_any_key_the_api_is_open() -> None:
    with TestClient(app=create_app(_container())) as client:
        assert client.post("/api/tasks", json=BODY).status_code == 202


def test_disabled_auth_checks_nothing_even_with_keys() -> None:
    container = _container(auth="disabled")
    _key(container, READ)
    with TestClient(app=create_app(container)) as client:
        assert client.post("/api/tasks", json=BODY).status_code == 202


def test_metrics_stay_open_unless_asked() -> None:
    container = _container(metrics_auth=False)
    _key(container, READ)
    with TestClient(app=create_app(container)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/tasks").status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("api.example.com", False),
    ],
)
def test_only_loopback_addresses_may_serve_an_open_api(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auth_settings_are_read_and_checked() -> None:
    assert Settings.from_env({}).auth == "on"
    assert Settings.from_env({"TASKFLOW_AUTH": "Disabled"}).auth == "disabled"
    assert Settings.from_env({"TASKFLOW_METRICS_AUTH": "true"}).metrics_auth
    with pytest.raises(ConfigError, match="TASKFLOW_AUTH"):
        Settings.from_env({"TASKFLOW_AUTH": "off"})


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer tf_abc", "tf_abc"),
        (b"bearer  tf_abc ", "tf_abc"),
        (b"Basic dXNlcjpwdw==", None),
        (b"Bearer ", None),
        (b"tf_abc", None),
    ],
)
def test_the_key_is_read_from_a_bearer_header_only(value: bytes, token: str | None) -> None:
    assert bearer_token([(b"host", b"h"), (b"authorization", value)]) == token
    assert bearer_token([(b"host", b"h")]) is None


def test_keys_over_http_are_made_shown_once_and_revoked(
    keyed: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    client, secrets = keyed
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    made = client.post(
        "/api/keys", json={"name": "bot", "scopes": ["read"], "tenant": "acme"}, headers=admin
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("tf_")
    assert (key["scopes"], key["tenant"], key["revoked_at"]) == (["read"], "acme", None)
    mine = {"Authorization": f"Bearer {key['key']}"}
    assert client.get("/api/tasks", headers=mine).status_code == 200
    listed = client.get("/api/keys", headers=admin).json()["items"]
    assert key["id"] in [k["id"] for k in listed]
    assert key["key"] not in str(listed)
    revoked = client.delete(f"/api/keys/{key['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n", "scopes": ["write"]}, "scopes"),
        ({"name": "n", "scopes": []}, "scopes"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "n", "scopes": ["read"], "tenant": "x" * 65}, "tenant"),
    ],
)
def test_a_bad_key_request_is_400_naming_the_field(
    keyed: tuple[TestClient[Litestar], dict[str, str]], body: dict[str, object], field: str
) -> None:
    client, secrets = keyed
    answer = client.post(
        "/api/keys", json=body, headers={"Authorization": f"Bearer {secrets['admin']}"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["field"] == field


def test_revoking_an_unknown_or_malformed_key_id(
    keyed: tuple[TestClient[Litestar], dict[str, str]],
) -> None:
    client, secrets = keyed
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    assert client.delete(f"/api/keys/{uuid.uuid4()}", headers=admin).status_code == 404
    assert client.delete("/api/keys/nope", headers=admin).status_code == 400


def test_the_api_description_asks_for_a_bearer_key_but_on_health() -> None:
    with TestClient(app=create_app(_container())) as client:
        document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["security"] == [{"apiKey": []}]
    assert "security" not in document["paths"]["/api/tasks"]["post"]  # the document's own
    for path in ("/health/live", "/health/ready"):
        assert document["paths"][path]["get"]["security"] == [{}]
