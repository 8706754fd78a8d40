"""The dashboard's session cookie (decision 35): its names, how it is set, how it is read.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (a request another site
starts goes without it) and ``Path=/``; over TLS it is also ``Secure`` and named ``__Host-…``,
so only this exact host over HTTPS can set it. Whether a request came over TLS is decided as
for the CSRF cookie (dashboard/csrf.py): the scheme uvicorn saw, after a trusted proxy's
``X-Forwarded-Proto``. It lives as long as the browser's session, and the value stops working
at its own expiry anyway (``SESSION_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from litestar.datastructures import Cookie

COOKIE: Final = "taskflow-session"
TLS_COOKIE: Final = "__Host-taskflow-session"
_COOKIE_HEADER = b"cookie"


def cookie_name(scheme: str) -> str:
    return TLS_COOKIE if scheme == "https" else COOKIE


def session_cookie(scheme: str, value: str) -> Cookie:
    """The cookie holding ``value``; an empty value with ``max_age=0`` clears it."""
    return Cookie(
        key=cookie_name(scheme),
        value=value,
        path="/",
        httponly=True,
        secure=scheme == "https",
        samesite="strict",
        max_age=None if value else 0,
    )


def session_from_headers(headers: Iterable[tuple[bytes, bytes]], scheme: str) -> str | None:
    """The session cookie's value among an ASGI request's headers, if it sent one."""
    wanted = cookie_name(scheme)
    for name, value in headers:
        if name != _COOKIE_HEADER:
            continue
        for pair in value.decode("latin-1").split(";"):
            key, equals, kept = pair.strip().partition("=")
            if equals and key == wanted and kept:
                return kept.strip('"')
    return None
