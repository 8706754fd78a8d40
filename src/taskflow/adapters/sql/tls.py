"""TLS to PostgreSQL, configured with libpq's options in the database URL, on every connection.

Users write ``?sslmode=verify-full&sslrootcert=/path/ca.pem`` (or SQLAlchemy's ``?ssl=…``).
SQLAlchemy's asyncpg dialect hands each URL option to ``asyncpg.connect`` as a keyword argument,
and that function knows ``ssl`` but not ``sslmode``, ``sslrootcert`` or the other libpq names,
which only asyncpg's DSN parser reads. So the engine gets the URL without them plus a DSN made of
them alone (``connect``'s own host, user and database win over a DSN that has none), and the
LISTEN connection, which asyncpg opens from a DSN, gets them in its DSN. Either way asyncpg
builds the TLS context, with libpq's meaning for each mode.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import URL, make_url

# libpq's names, as asyncpg's DSN parser reads them.
TLS_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
    }
)
_SQLALCHEMY_MODE = "ssl"  # SQLAlchemy's documented spelling of sslmode for asyncpg


def engine_url_and_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """``url`` without its TLS options, and the ``connect_args`` that carry them to asyncpg."""
    options = _tls_options(url)
    if not options:
        return url, {}
    rest = url.difference_update_query([*options, _SQLALCHEMY_MODE])
    return rest, {"dsn": f"postgresql://?{urlencode(options)}"}


def asyncpg_dsn(url: str | URL) -> str:
    """``url`` as a DSN for ``asyncpg.connect``, TLS options under libpq's names."""
    parsed = make_url(url)
    return (
        parsed.difference_update_query([_SQLALCHEMY_MODE])
        .update_query_dict(_tls_options(parsed))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def _tls_options(url: URL) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in url.query.items():
        last = value if isinstance(value, str) else value[-1]
        if key in TLS_OPTIONS:
            options[key] = last
        elif key == _SQLALCHEMY_MODE:
            options.setdefault("sslmode", last)
    return options
