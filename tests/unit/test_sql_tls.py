"""PostgreSQL TLS options in the database URL reach asyncpg under names it reads."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import make_url

from taskflow.adapters.sql.tls import asyncpg_dsn, engine_url_and_args

URL = "postgresql+asyncpg://app:s3cret@db.internal:5432/taskflow"


def _query(dsn: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(dsn).query)


def test_the_engine_url_loses_its_tls_options_to_a_dsn_of_their_own() -> None:
    url = make_url(f"{URL}?sslmode=verify-full&sslrootcert=/etc/ca dir/ca.pem&application_name=a")
    rest, args = engine_url_and_args(url)
    assert dict(rest.query) == {"application_name": "a"}
    assert rest.render_as_string(hide_password=False).startswith(URL)
    assert _query(args["dsn"]) == {
        "sslmode": ["verify-full"],
        "sslrootcert": ["/etc/ca dir/ca.pem"],
    }
    assert urlsplit(args["dsn"]).netloc == ""  # connect's own host, user and database win


def test_sqlalchemys_ssl_is_read_as_sslmode_and_sslmode_wins_over_it() -> None:
    _, args = engine_url_and_args(make_url(f"{URL}?ssl=require&sslcert=/c.pem&sslkey=/c.key"))
    assert _query(args["dsn"]) == {
        "sslmode": ["require"],
        "sslcert": ["/c.pem"],
        "sslkey": ["/c.key"],
    }
    _, args = engine_url_and_args(make_url(f"{URL}?ssl=require&sslmode=verify-ca"))
    assert _query(args["dsn"]) == {"sslmode": ["verify-ca"]}


def test_a_url_without_tls_options_is_left_alone() -> None:
    url = make_url(f"{URL}?application_name=a")
    assert engine_url_and_args(url) == (url, {})


def test_the_listeners_dsn_keeps_the_password_and_names_the_mode_as_libpq_does() -> None:
    dsn = asyncpg_dsn(f"{URL}?ssl=verify-full&sslrootcert=/ca.pem")
    assert dsn.startswith("postgresql://app:s3cret@db.internal:5432/taskflow?")
    assert _query(dsn) == {"sslmode": ["verify-full"], "sslrootcert": ["/ca.pem"]}
