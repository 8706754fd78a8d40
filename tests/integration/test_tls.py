"""TLS to PostgreSQL (libpq's ``sslmode`` options) and Redis (``rediss://``), against servers of
this module's own that refuse plain connections and present a certificate from a self-signed CA."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from taskflow.adapters.redis import RedisTaskQueue
from taskflow.adapters.redis import connect as redis_connect
from taskflow.adapters.sql.engine import MIGRATIONS, create_engine, store_errors
from taskflow.adapters.sql.notifications import EnqueuedListener
from taskflow.adapters.sql.transactional import CHANNEL
from taskflow.domain.errors import QueueUnavailable, StoreUnavailable
from tests.integration.conftest import Stack, make_stack
from tests.integration.processes import base_env, run_cli, wait_for
from tests.integration.servers import PG_USER
from tests.integration.tls_servers import (
    CERT_USER,
    PG_PASSWORD,
    Certificates,
    TlsPostgresServer,
    TlsRedisServer,
)

REDIS_PASSWORD = "redis-Secret-4-tls"


@pytest.fixture(scope="module")
def certs() -> Iterator[Certificates]:
    made = Certificates()
    yield made
    made.close()


@pytest.fixture(scope="module")
def tls_redis(certs: Certificates) -> Iterator[TlsRedisServer]:
    with TlsRedisServer(certs) as server:
        yield server


@pytest.fixture(scope="module")
def tls_postgres(certs: Certificates) -> Iterator[TlsPostgresServer]:
    with TlsPostgresServer(certs) as server:
        yield server


def _verify_full(server: TlsPostgresServer, database: str = "postgres", **extra: str) -> str:
    return server.tls_url(
        database, sslmode="verify-full", sslrootcert=str(server.certs.ca), **extra
    )


def _select(url: str, query: str) -> list[object]:
    """The first column of ``query``'s rows, through taskflow's engine for ``url``."""

    async def select() -> list[object]:
        engine = create_engine(url, pool_size=1)
        try:
            with store_errors():
                async with engine.connect() as conn:
                    return list((await conn.execute(text(query))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(select())


def test_the_servers_refuse_plain_connections(
    tls_postgres: TlsPostgresServer, tls_redis: TlsRedisServer
) -> None:
    async def plain_postgres() -> None:
        await asyncpg.connect(
            host="127.0.0.1", port=tls_postgres.port, user=PG_USER, password=PG_PASSWORD, ssl=False
        )

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        asyncio.run(plain_postgres())
    plain = redis.Redis(host="127.0.0.1", port=tls_redis.port, socket_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError), contextlib.closing(plain):
        plain.ping()


@pytest.mark.parametrize(
    "options",
    [
        {"sslmode": "verify-full", "sslrootcert": "CA"},
        {"sslmode": "verify-ca", "sslrootcert": "CA"},
        {"ssl": "verify-full", "sslrootcert": "CA"},  # SQLAlchemy's spelling of the mode
        {"sslmode": "require"},
    ],
    ids=["sslmode-verify-full", "sslmode-verify-ca", "ssl-verify-full", "sslmode-require"],
)
def test_the_engine_speaks_tls_as_the_url_says(
    tls_postgres: TlsPostgresServer, options: dict[str, str]
) -> None:
    ca = str(tls_postgres.certs.ca)
    url = tls_postgres.tls_url(**{k: ca if v == "CA" else v for k, v in options.items()})

    assert _select(url, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [True]


@pytest.mark.parametrize("mode_option", ["sslmode", "ssl"])
def test_the_listener_hears_enqueued_ids_over_tls(
    tls_postgres: TlsPostgresServer, mode_option: str
) -> None:
    url = tls_postgres.tls_url(
        **{mode_option: "verify-full", "sslrootcert": str(tls_postgres.certs.ca)}
    )
    task_id = uuid.uuid4()

    async def hear() -> list[uuid.UUID]:
        heard: asyncio.Queue[list[uuid.UUID]] = asyncio.Queue()
        listener = EnqueuedListener(url, heard.put)
        listening = asyncio.create_task(listener.run())
        engine = create_engine(url, pool_size=1)
        try:
            async with asyncio.timeout(60):
                # Announce until heard: the listener may not be listening yet.
                while heard.empty():
                    async with engine.begin() as conn:
                        notify = text("SELECT pg_notify(:channel, :ids)")
                        await conn.execute(notify, {"channel": CHANNEL, "ids": str(task_id)})
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            return await heard.get()
                return heard.get_nowait()
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            await engine.dispose()

    assert asyncio.run(hear()) == [task_id]


def test_alembic_with_an_engine_of_its_own_migrates_over_tls(
    tls_postgres: TlsPostgresServer,
) -> None:
    url = _verify_full(tls_postgres, tls_postgres.create_database())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")  # no connection handed over: env.py makes the engine

    tables = _select(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert {"tasks", "alembic_version"} <= set(tables)


@pytest.fixture
def tls_stack(
    tls_postgres: TlsPostgresServer, tls_redis: TlsRedisServer, tmp_path: Path
) -> Iterator[Stack]:
    """Migrated over TLS (``taskflow migrate``), with no process started yet."""
    database = tls_postgres.create_database()
    built = make_stack(
        _verify_full(tls_postgres, database),
        "tls",
        tmp_path,
        TASKFLOW_REDIS_URL=tls_redis.tls_url(),
    )
    yield built
    for process in built.processes:
        process.stop()


def test_a_task_completes_with_tls_to_both_servers(tls_stack: Stack) -> None:
    tls_stack.start_worker()
    tls_stack.start_api()
    task = tls_stack.submit({"type": "debug.echo", "payload": {"over": "tls"}})
    [done] = tls_stack.wait_status([task["id"]])
    assert done["status"] == "SUCCESS", tls_stack.dump_logs()
    assert done["result"] == {"over": "tls"}
    with httpx.Client(base_url=tls_stack.base_url, timeout=30) as client:
        ready = client.get("/health/ready").json()
    assert ready["status"] == "ok", ready


def test_migrate_with_the_wrong_ca_fails_in_one_clear_line(
    tls_postgres: TlsPostgresServer,
) -> None:
    url = tls_postgres.tls_url(sslmode="verify-full", sslrootcert=str(tls_postgres.certs.wrong_ca))
    done = run_cli(["migrate"], base_env(TASKFLOW_DATABASE_URL=url))
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "the database is unreachable" in done.stderr
    assert "certificate verify failed" in done.stderr
    assert "Traceback" not in done.stderr
    assert PG_PASSWORD not in done.stderr


def test_a_redis_with_a_certificate_from_another_ca_is_refused_clearly(
    tls_redis: TlsRedisServer, tls_stack: Stack
) -> None:
    wrong = tls_redis.tls_url(ca=tls_redis.certs.wrong_ca).replace(
        "rediss://", f"rediss://:{REDIS_PASSWORD}@"
    )

    async def push() -> None:
        client = redis_connect(wrong)
        try:
            await RedisTaskQueue(client, prefix="tls-wrong-ca").ping()
        finally:
            await client.aclose()

    with pytest.raises(QueueUnavailable) as refused:
        asyncio.run(push())
    assert "certificate verify failed" in refused.value.message
    assert REDIS_PASSWORD not in refused.value.message

    api = tls_stack.start_api(env={"TASKFLOW_REDIS_URL": wrong})

    def degraded() -> dict[str, object] | None:
        body = httpx.get(f"{tls_stack.base_url}/health/ready", timeout=10).json()
        return body if body["status"] == "degraded" else None

    body = wait_for(degraded, timeout=60, interval=0.5, what="readiness to report the queue")
    assert "certificate verify failed" in str(body), body
    assert REDIS_PASSWORD not in str(body) + api.output()
    assert "Traceback" not in api.output()


def test_client_certificates_named_in_the_urls_are_presented(
    certs: Certificates, tls_postgres: TlsPostgresServer
) -> None:
    with_cert = {"sslcert": str(certs.client_cert), "sslkey": str(certs.client_key)}
    signed_in = tls_postgres.tls_url(
        user=CERT_USER, sslmode="verify-full", sslrootcert=str(certs.ca), **with_cert
    )
    anonymous = tls_postgres.tls_url(
        user=CERT_USER, sslmode="verify-full", sslrootcert=str(certs.ca)
    )

    assert _select(signed_in, "SELECT current_user") == [CERT_USER]
    with pytest.raises(StoreUnavailable, match="certificate"):
        _select(anonymous, "SELECT current_user")
    _drop_refused_sockets()

    async def ping(url: str) -> None:
        client = redis_connect(url)
        try:
            await RedisTaskQueue(client, prefix="tls-client-cert").ping()
        finally:
            await client.aclose()

    with TlsRedisServer(certs, client_certs=True) as strict:
        asyncio.run(ping(strict.tls_url(client_cert=True)))
        with pytest.raises(QueueUnavailable):
            asyncio.run(ping(strict.tls_url(client_cert=False)))
        _drop_refused_sockets()


def _drop_refused_sockets() -> None:
    """Collect the socket a driver leaves behind when the server refuses its TLS handshake,
    here, where that is expected: left to a later collection, its ResourceWarning fails
    whichever test the collector happens to run in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
