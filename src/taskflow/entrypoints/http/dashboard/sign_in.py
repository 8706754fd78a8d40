"""Signing in to the dashboard with an API key, and out again (decision 35).

The form takes a key with the ``read`` scope (the pages) or ``admin`` (the pages and their
actions) and answers with a session cookie (sessions.py) and a redirect to the page asked for.
The key is used once and never stored: the cookie holds the key's id and a tag derived from
its stored hash. Both forms carry the CSRF token as the actions do (csrf.py), so another site
can neither sign a browser in to a key of its choosing nor sign it out.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from taskflow.domain.keys import Scope
from taskflow.domain.services.keys import KeyService
from taskflow.entrypoints.http.auth import SIGN_IN
from taskflow.entrypoints.http.dashboard.csrf import page_token, refuse_cross_site
from taskflow.entrypoints.http.dashboard.forms import dashboard_path
from taskflow.entrypoints.http.sessions import session_cookie

log = logging.getLogger("taskflow.api")

HOME = "/dashboard/"
#: The form's field holding the key.
KEY_FIELD = "key"


def _form(request: Request[Any, Any, Any], next_path: str, status: int, problem: str) -> Template:
    token, cookie = page_token(request)
    return Template(
        "sign_in.html",
        context={"nav": None, "csrf": token, "next": next_path, "problem": problem},
        cookies=[] if cookie is None else [cookie],
        status_code=status,
    )


class DashboardSignIn(Controller):
    path = "/dashboard"
    include_in_schema = False

    @get("/sign-in")
    async def form(
        self, request: Request[Any, Any, Any], keys: NamedDependency[KeyService]
    ) -> Template | Redirect:
        next_path = dashboard_path(request.query_params.get("next") or "", HOME)
        # No key yet, or TASKFLOW_AUTH=disabled: the dashboard is open.
        if request.app.state.get("auth_disabled") or not await keys.enforced():
            return Redirect(next_path, status_code=303)
        return _form(request, next_path, 200, "")

    @post("/sign-in", before_request=refuse_cross_site)
    async def sign_in(
        self, request: Request[Any, Any, Any], keys: NamedDependency[KeyService]
    ) -> Template | Redirect:
        form = await request.form()
        secret = str(form.get(KEY_FIELD) or "").strip()
        next_path = dashboard_path(str(form.get("next") or ""), HOME)
        principal = await keys.principal(secret) if secret else None
        if principal is None:
            return _form(request, next_path, 401, "That API key is wrong or revoked.")
        if not principal.allows(Scope.READ):
            problem = f"The key {principal.name!r} has neither the read nor the admin scope."
            return _form(request, next_path, 403, problem)
        session = keys.open_session(secret, principal)
        log.info(
            "dashboard sign-in",
            extra={"key_id": str(principal.key_id), "key_name": principal.name},
        )
        cookie = session_cookie(request.url.scheme, session)
        return Redirect(next_path, status_code=303, cookies=[cookie])

    @post("/sign-out", before_request=refuse_cross_site)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        """The session cookie cleared; the session itself ends at its expiry or its key's
        revocation (nothing of it is kept on the server to forget)."""
        cookie = session_cookie(request.url.scheme, "")
        return Redirect(SIGN_IN, status_code=303, cookies=[cookie])
