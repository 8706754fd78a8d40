"""Who may call which route (docs/security.md, "Authentication and API keys").

Everything asks for a key once one exists, but ``/health/*``, the API's description under
``/schema`` and, unless ``TASKFLOW_METRICS_AUTH=true``, ``/metrics``: so a route added later
is closed until it is named here. A request that only reads (GET, HEAD) needs ``read``;
creating tasks (``POST /api/tasks``, ``POST /api/tasks/batch``) needs ``submit``; anything
else, and everything under ``/api/keys``, needs ``admin``, which includes the other two.

Plain ASGI around the app, before its router, like ``RequestIds``: a Litestar guard cost a
submission about a third of its CPU (Litestar copies the route handler for each guard call),
this costs a scan of the header list and a dictionary lookup (decision 30).

A browser cannot send that header: under ``/dashboard`` a request without one is checked for
a session cookie instead (decision 35), made by signing in with a key that has ``read`` (to
see the pages) or ``admin`` (to act). Without a valid session it is sent to the sign-in form;
the form, signing out and the dashboard's own files need none. The cookie is read nowhere
else: it never authenticates the API, which a cookie would open to other sites' forms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar.connection import ASGIConnection
from litestar.openapi.spec import SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from taskflow.config import Settings
from taskflow.containers import Container
from taskflow.domain.errors import StoreUnavailable
from taskflow.domain.keys import ANONYMOUS, DEFAULT_TENANT, Principal
from taskflow.domain.keys import Scope as KeyScope
from taskflow.domain.services.keys import UNKNOWN, KeyService
from taskflow.entrypoints.http.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS
from taskflow.entrypoints.http.schemas import ProblemOut
from taskflow.entrypoints.http.sessions import session_from_headers

log = logging.getLogger("taskflow.api")

AUTHORIZATION = b"authorization"
#: The OpenAPI security scheme of every operation but the open ones.
BEARER = "apiKey"
BEARER_SCHEME = SecurityScheme(
    type="http",
    scheme="bearer",
    description="An API key (taskflow keys create), needed once one exists; "
    "scopes submit, read, admin (docs/security.md)",
)
#: Where the check leaves the request's principal: ``request.scope["state"]``.
PRINCIPAL = "taskflow.principal"
_OPEN_PREFIXES = ("/health/", "/schema")
_READING = frozenset({"GET", "HEAD", "OPTIONS"})
_KEYS = "/api/keys"
_SUBMITTING = frozenset({"/api/tasks", "/api/tasks/batch"})
#: The submit routes as most clients write them: settled by one set lookup.
_SUBMIT_PATHS = _SUBMITTING | {f"{path}/" for path in _SUBMITTING}
_DASHBOARD = "/dashboard"
SIGN_IN = "/dashboard/sign-in"
SIGN_OUT = "/dashboard/sign-out"
_DASHBOARD_FILES = "/dashboard/static/"
#: What shows every tenant's work at once (queue depths, running task ids, counters): the
#: operator's, so only keys of the default tenant reach it (decision 36).
_FLEET = ("/api/queues", "/api/workers", "/metrics", "/dashboard/queues", "/dashboard/workers")


def fleet_refusal(path: str, principal: Principal) -> str | None:
    """Why ``principal`` may not see ``path``, a fleet view of another tenant's key; or None."""
    if principal.is_operator or not path.startswith(_FLEET):
        return None
    return (
        f"the key {principal.name!r} belongs to tenant {principal.tenant!r}; queues, workers "
        f"and metrics show every tenant's work and are the operator's (tenant {DEFAULT_TENANT!r})"
    )


def required_scope(method: str, path: str, *, metrics_auth: bool) -> KeyScope | None:
    """The scope a request needs; None for the open routes."""
    if method == "POST" and path in _SUBMIT_PATHS:  # the most common request: one lookup
        return KeyScope.SUBMIT
    if path.startswith(_OPEN_PREFIXES) or (path == "/metrics" and not metrics_auth):
        return None
    if path.startswith(_KEYS):
        return KeyScope.ADMIN  # even a list of keys: their names, scopes and tenants
    if method in _READING:
        return KeyScope.READ
    if method == "POST" and path.rstrip("/") in _SUBMITTING:
        return KeyScope.SUBMIT
    return KeyScope.ADMIN


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (ASGI: names in lower case)."""
    for name, value in headers:
        if name == AUTHORIZATION:
            if value[:7].lower() != b"bearer ":
                return None
            token = value[7:].strip()
            return token.decode("latin-1") if token else None
    return None


def principal_of(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Who makes this request: its key's principal, or ``ANONYMOUS`` while the API is open."""
    state = request.scope.get("state") or {}
    principal: Principal = state.get(PRINCIPAL, ANONYMOUS)
    return principal


def tenant_of(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The tenant whose tasks this request sees and acts on (decision 36)."""
    return principal_of(request).tenant


def key_check(container: Container) -> KeyCheck | None:
    """The API's key check; None with ``TASKFLOW_AUTH=disabled``."""
    settings: Settings = container.settings()
    if settings.auth == "disabled":
        return None
    return KeyCheck(container.key_service(), metrics_auth=settings.metrics_auth)


def checking_keys(app: ASGIApp, container: Container) -> ASGIApp:
    """``app`` behind a ``KeyCheck`` (a worker's metrics port); as it is with
    ``TASKFLOW_AUTH=disabled``. The API runs its check inside ``RequestIds`` instead."""
    check = key_check(container)
    return app if check is None else KeyChecked(app, check)


class KeyCheck:
    """401 without a valid key (once keys exist), 403 without the scope.

    ``admitted`` settles the common request without a coroutine: one that needs no key, or
    sends a key the cache knows and that may do what it asks. Anything else goes to ``admit``,
    which decides every case and answers the refusals. Run by the wrapper around the whole
    application (``RequestIds``) rather than as an ASGI layer of its own: each layer costs a
    submission a coroutine (docs/performance.md, issue 13).
    """

    def __init__(self, keys: KeyService, *, metrics_auth: bool) -> None:
        self._keys = keys
        self._metrics_auth = metrics_auth

    def admitted(self, scope: Scope) -> bool:
        """True: the request goes on, its principal in its state. False: ask ``admit``."""
        http: Any = scope
        path = http["path"]
        needed = required_scope(http["method"], path, metrics_auth=self._metrics_auth)
        keys = self._keys
        if needed is None or keys.surely_open:
            return True
        secret = bearer_token(http["headers"])
        if secret is None:
            return False
        principal = keys.cached(secret)
        if principal is UNKNOWN or principal is None or not principal.allows(needed):
            return False
        if fleet_refusal(path, principal) is not None:
            return False
        _set_principal(http, principal)
        return True

    async def admit(self, scope: Scope, send: Send) -> bool:
        """Whether the request goes on; when not, its answer has been sent."""
        try:
            return await self._admit(scope, send)
        except StoreUnavailable as exc:  # outside Litestar: its 503 handler is not here
            await _refuse(send, 503, exc.message, retry_after=True)
            return False

    async def _admit(self, scope: Scope, send: Send) -> bool:
        http: Any = scope
        keys = self._keys
        needed = required_scope(http["method"], http["path"], metrics_auth=self._metrics_auth)
        if needed is None or not (keys.surely_enforced or await keys.enforced()):
            return True
        secret = bearer_token(http["headers"])
        if secret is None:
            path = http["path"]
            if path == _DASHBOARD or path.startswith(_DASHBOARD + "/"):
                return await self._by_session(http, send, needed)
            await _refuse(send, 401, "this route needs an API key: Authorization: Bearer KEY")
            return False
        # The cache answers nearly every request, in ``admitted``: this is the rest.
        principal = keys.cached(secret)
        if principal is UNKNOWN:
            principal = await keys.principal(secret)
        if principal is None:
            await _refuse(send, 401, "the API key is wrong or revoked")
            return False
        if not principal.allows(needed):
            log.info(
                "api key lacks a scope",
                extra={"key_id": str(principal.key_id), "key_name": principal.name},
            )
            detail = f"the key {principal.name!r} lacks the {needed.value} scope"
            await _refuse(send, 403, f"{detail} this route needs")
            return False
        fleet = fleet_refusal(http["path"], principal)
        if fleet is not None:
            await _refuse(send, 403, fleet)
            return False
        _set_principal(http, principal)
        return True

    async def _by_session(self, http: Any, send: Send, needed: KeyScope) -> bool:
        """A dashboard request without a key: its session's principal, or the sign-in form."""
        path = http["path"]
        if path in (SIGN_IN, SIGN_OUT) or path.startswith(_DASHBOARD_FILES):
            return True
        text = session_from_headers(http["headers"], http.get("scheme", "http"))
        principal = None if text is None else await self._keys.session_principal(text)
        if principal is None:
            await _to_sign_in(send, http)
            return False
        if not principal.allows(needed):
            detail = f"the key {principal.name!r} lacks the {needed.value} scope"
            await _refuse(send, 403, f"{detail} this dashboard action needs")
            return False
        fleet = fleet_refusal(path, principal)
        if fleet is not None:
            await _refuse(send, 403, fleet)
            return False
        _set_principal(http, principal)
        return True


class KeyChecked:
    """ASGI middleware: ``app`` behind ``check``."""

    def __init__(self, app: ASGIApp, check: KeyCheck) -> None:
        self.app = app
        self._check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = self._check
        if check.admitted(scope) or await check.admit(scope, send):
            await self.app(scope, receive, send)


def _set_principal(http: Any, principal: Principal) -> None:
    state = http.get("state")
    if state is None:
        state = http["state"] = {}
    state[PRINCIPAL] = principal


async def _to_sign_in(send: Send, http: Any) -> None:
    """303 to the sign-in form, which brings a page asked for (a GET) back after it."""
    target = SIGN_IN
    if http["method"] in _READING:
        query = http.get("query_string", b"").decode("latin-1")
        target += "?" + urlencode({"next": http["path"] + (f"?{query}" if query else "")})
    headers = [(b"location", target.encode()), (b"cache-control", b"no-store")]
    await _answer(send, 303, headers, b"")


async def _refuse(send: Send, status: int, detail: str, *, retry_after: bool = False) -> None:
    body = msgspec.json.encode(
        ProblemOut(title=HTTPStatus(status).phrase, status=status, detail=detail)
    )
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after:
        headers.append((b"retry-after", RETRY_AFTER_SECONDS.encode()))
    await _answer(send, status, headers, body)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
