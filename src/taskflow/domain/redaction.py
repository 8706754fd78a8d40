"""Passwords out of text that may name a URL: log lines, error messages, health checks."""

from __future__ import annotations

import re
from typing import Final

#: ``scheme://user:password@``: the password runs to the last ``@`` before a space or quote,
#: so that an unescaped ``@`` in it is masked too.
_USERINFO: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*):[^\s'\"]*@")
#: ``?password=…`` and the like in a URL's query (libpq, asyncpg and redis-py read them), and
#: a client key's passphrase (``sslpassword``, ``ssl_password``).
_QUERY: Final = re.compile(
    r"([?&](?:password|sslpassword|ssl_password|passwd|pwd)=)[^&\s'\"]*", re.IGNORECASE
)
MASK: Final = "***"


def without_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    masked = _USERINFO.sub(rf"\1:{MASK}@", text)
    return _QUERY.sub(rf"\1{MASK}", masked)
