"""What keeps another site from making a visitor's browser act on the dashboard (decision 31).

An action (a POST) is carried out only when all three hold:

- the browser says it comes from this site: ``Origin`` (or, failing that, ``Referer``) names
  this host, and ``Sec-Fetch-Site``, when sent, is ``same-origin``;
- its form carries the token this browser was given in a cookie (``csrf_token`` equal to the
  cookie, compared in constant time). Another site can make a browser send the cookie, never
  read it, so it cannot write the form field;
- the cookie itself is ``SameSite=Strict`` (not sent with a request another site starts) and
  ``HttpOnly``; over TLS it is ``Secure`` and named ``__Host-…``, which a browser accepts only
  from this exact host over HTTPS, so a sibling subdomain or a plain-HTTP answer cannot plant one.

A page hands out the token (`page_token`), each action checks it (`refuse_cross_site`).
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie
from litestar.exceptions import PermissionDeniedException

#: The form field and the cookies (plain HTTP, and over TLS) holding the token.
FIELD: Final = "csrf_token"
COOKIE: Final = "taskflow-csrf"
TLS_COOKIE: Final = "__Host-taskflow-csrf"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def over_tls(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser reached us over HTTPS: directly, or through a proxy that uvicorn
    trusts (``FORWARDED_ALLOW_IPS``, by default 127.0.0.1 and ::1) and that sent
    ``X-Forwarded-Proto: https``."""
    return request.url.scheme == "https"


def _cookie_name(request: Request[Any, Any, Any]) -> str:
    return TLS_COOKIE if over_tls(request) else COOKIE


def page_token(request: Request[Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The token a page puts in its forms, and the cookie to set when the browser has none."""
    kept = request.cookies.get(_cookie_name(request))
    if kept is not None and _TOKEN.fullmatch(kept):
        return kept, None
    token = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=_cookie_name(request),
        value=token,
        path="/",  # what a __Host- cookie must have; a session cookie, gone with the browser
        httponly=True,
        secure=over_tls(request),
        samesite="strict",
    )
    return token, cookie


def _refuse(reason: str) -> PermissionDeniedException:
    return PermissionDeniedException(f"a dashboard action {reason}")


def _same_origin(request: Request[Any, Any, Any]) -> None:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        raise _refuse("needs the Origin (or Referer) header a browser sends")
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    if parts.scheme not in {"http", "https"} or parts.netloc.lower() != host.lower():
        raise _refuse(f"must come from this site ({host}), not from {source[:100]!r}")
    fetched_from = request.headers.get("sec-fetch-site")
    if fetched_from is not None and fetched_from != "same-origin":
        raise _refuse(f"must come from this site, not from a {fetched_from[:32]!r} page")


async def refuse_cross_site(request: Request[Any, Any, Any]) -> None:
    """An action's guard (``before_request``): 403 unless the request is the dashboard's own."""
    _same_origin(request)
    form = await request.form()  # read once: the handler's own request.form() reuses it
    sent = form.get(FIELD)
    kept = request.cookies.get(_cookie_name(request))
    # As bytes: compare_digest refuses a str with a character beyond ASCII (a 500, not a 403).
    matches = isinstance(sent, str) and hmac.compare_digest(sent.encode(), (kept or "").encode())
    if not kept or not matches:
        raise _refuse("needs the form's token to match this browser's cookie: reload the page")
