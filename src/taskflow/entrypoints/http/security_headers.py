"""What every answer tells a browser about itself (docs/security.md, "Dashboard").

``API_HEADERS`` go on every answer of the API process, added by the wrapper around the whole
application (`RequestIds`) as one constant list: no Litestar layer runs for them, so the submit
path pays for three more header tuples only. ``DASHBOARD_POLICY`` is the dashboard's content
security policy, set on its router: its pages load only the package's own files, run no inline
script or style, and may not be framed.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import ResponseHeader

#: On every answer: no content sniffing, no referrer to other sites, never in a frame.
#: ``same-origin`` rather than ``no-referrer``: under ``no-referrer`` a browser sends
#: ``Origin: null`` with a same-site form POST, and the dashboard's actions check ``Origin``.
API_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

DASHBOARD_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",  # the live refresh fetches the page again
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
DASHBOARD_HEADERS: Final = {"Content-Security-Policy": DASHBOARD_POLICY}


def dashboard_headers() -> list[ResponseHeader]:
    """The dashboard router's own headers (a layer's ``response_headers``)."""
    return [ResponseHeader(name=name, value=value) for name, value in DASHBOARD_HEADERS.items()]
