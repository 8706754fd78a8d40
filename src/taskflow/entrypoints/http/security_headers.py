"""What every answer tells a browser about itself (docs/security.md, "Dashboard").

``API_HEADERS`` go on every answer of the API process, added by the wrapper around the whole
application (`RequestIds`) as one constant list: no Litestar layer runs for them, so the submit
path pays for three more header tuples only. ``DASHBOARD_POLICY`` is the dashboard's content
security policy, set on its router: its pages load only the package's own files, run no inline
script or style, and may not be framed. Its pages also say ``NO_STORE``; its static files do not.
"""

from __future__ import annotations

from collections.abc import Mapping
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
#: On the dashboard's pages, forms and redirects, not its static files: a page shows payloads,
#: results and errors, which no cache, the browser's or one on the way, should keep.
NO_STORE: Final = {"Cache-Control": "no-store"}


def layer_headers(headers: Mapping[str, str]) -> list[ResponseHeader]:
    """``headers`` as a Litestar layer's ``response_headers``."""
    return [ResponseHeader(name=name, value=value) for name, value in headers.items()]
