"""Who may call which route (docs/security.md, "Authentication and API keys").

One guard on the router of the protected routes (``/api/*``, ``/dashboard``, and ``/metrics``
with ``TASKFLOW_METRICS_AUTH=true``); ``/health/*`` and the API's description stay open. A
route needs the scope in its ``opt`` (``opt={"scope": Scope.SUBMIT}``), else ``read`` when
it only reads (GET) and ``admin`` for anything else, so a new action is closed by default.

The guard reads the header list of the ASGI scope rather than a ``Headers`` object, and asks
the process's ``KeyService``, whose cache answers nearly every request without the store: it
runs on every submission (decision 30).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from taskflow.domain.keys import ANONYMOUS, Principal, Scope
from taskflow.domain.services.keys import KeyService

AUTHORIZATION = b"authorization"
#: Where the guard leaves the request's principal: ``request.scope["state"]``.
PRINCIPAL = "taskflow.principal"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_READING = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(handler: BaseRouteHandler) -> Scope:
    """The scope a route asks for: its ``opt["scope"]``, else by what it does."""
    named: Scope | None = handler.opt.get("scope")
    if named is not None:
        return named
    methods: frozenset[str] | None = getattr(handler, "http_methods", None)
    return Scope.READ if methods and methods <= _READING else Scope.ADMIN


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (ASGI: names in lower case)."""
    for name, value in headers:
        if name == AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def principal_of(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Who makes this request: its key's principal, or ``ANONYMOUS`` while the API is open."""
    state = request.scope.get("state") or {}
    principal: Principal = state.get(PRINCIPAL, ANONYMOUS)
    return principal


def key_guard(keys: KeyService) -> Guard:
    """The guard: 401 without a valid key (once keys exist), 403 without the route's scope.

    A function, not an object: Litestar deep-copies a router's guards with the router, and
    the guard must ask this process's one ``KeyService`` (its cache, its store)."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not await keys.enforced():
            return
        secret = bearer_token(connection.scope["headers"])
        if secret is None:
            raise NotAuthorizedException(
                "this route needs an API key: send Authorization: Bearer <key>", headers=_CHALLENGE
            )
        principal = await keys.principal(secret)
        if principal is None:
            raise NotAuthorizedException("the API key is wrong or revoked", headers=_CHALLENGE)
        needed = required_scope(handler)
        if not principal.allows(needed):
            raise PermissionDeniedException(
                f"the key {principal.name!r} lacks the {needed.value} scope this route needs"
            )
        state = connection.scope.get("state")
        if state is None:
            state = connection.scope["state"] = {}
        state[PRINCIPAL] = principal

    return guard
