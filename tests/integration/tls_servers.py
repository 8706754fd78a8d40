"""Throwaway Redis and PostgreSQL servers that speak TLS only, with a self-signed CA of their own.

The certificates are made with the ``openssl`` command line (the ``cryptography`` package is not
installed). The server certificate names 127.0.0.1 and localhost, so ``verify-full`` holds for
both; the client certificate names ``CERT_USER``, the PostgreSQL role that signs in with it; a
second, unrelated CA stands in for a client configured with the wrong one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

import redis

from tests.integration.servers import PG_BIN, PG_USER, PostgresServer, RedisServer

PG_PASSWORD = "tls-test-Pa55word"
CERT_USER = "taskflow_cert"


class Certificates:
    """A CA, a server and a client certificate it signed, and a CA that signed nothing here."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tf-tls-"))
        self.ca = self.dir / "ca.pem"
        self.wrong_ca = self.dir / "wrong-ca.pem"
        self.server_cert = self.dir / "server.pem"
        self.server_key = self.dir / "server.key"
        self.client_cert = self.dir / "client.pem"
        self.client_key = self.dir / "client.key"
        self._make_ca("ca", "taskflow test CA")
        self._make_ca("wrong-ca", "some other CA")
        names = "subjectAltName=IP:127.0.0.1,DNS:localhost"
        self._make_leaf("server", "127.0.0.1", f"extendedKeyUsage=serverAuth\n{names}")
        self._make_leaf("client", CERT_USER, "extendedKeyUsage=clientAuth")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _make_ca(self, name: str, common_name: str) -> None:
        self._openssl(
            "req", "-x509", *_EC_KEY, "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def _make_leaf(self, name: str, common_name: str, extensions: str) -> None:
        (self.dir / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectKeyIdentifier=hash\n"
            f"{extensions}\n"
        )
        self._openssl(
            "req", "-new", *_EC_KEY, "-nodes", "-subj", f"/CN={common_name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        )  # fmt: skip

    def _openssl(self, *args: str) -> None:
        done = subprocess.run(
            ["openssl", *args], cwd=self.dir, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"openssl {args[0]} failed:\n{done.stderr}"


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


class TlsRedisServer(RedisServer):
    """Redis listening on a TLS port only (``--port 0``); with ``client_certs``, a client must
    present a certificate from the CA too."""

    def __init__(self, certs: Certificates, *, client_certs: bool = False) -> None:
        super().__init__()
        self.certs = certs
        self.client_certs = client_certs

    def tls_url(self, ca: Path | None = None, *, client_cert: bool | None = None) -> str:
        options = {"ssl_ca_certs": str(ca or self.certs.ca), "ssl_cert_reqs": "required"}
        if self.client_certs if client_cert is None else client_cert:
            options |= {
                "ssl_certfile": str(self.certs.client_cert),
                "ssl_keyfile": str(self.certs.client_key),
            }
        return f"rediss://127.0.0.1:{self.port}/0?{urlencode(options)}"

    @property
    def url(self) -> str:
        return self.tls_url()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def _listen_args(self) -> list[str]:
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(self.certs.server_cert),
            "--tls-key-file", str(self.certs.server_key),
            "--tls-ca-cert-file", str(self.certs.ca),
            "--tls-auth-clients", "yes" if self.client_certs else "no",
        ]  # fmt: skip


class TlsPostgresServer(PostgresServer):
    """PostgreSQL whose TCP connections must use TLS (``hostssl`` only in pg_hba.conf), with a
    password, or for ``CERT_USER`` a client certificate; the Unix socket in its directory,
    trusted, is for setting it up."""

    def __init__(self, certs: Certificates) -> None:
        super().__init__()
        self.certs = certs

    def tls_url(self, database: str = "postgres", *, user: str = PG_USER, **options: str) -> str:
        credentials = f"{user}:{quote(PG_PASSWORD, safe='')}" if user == PG_USER else user
        return f"postgresql+asyncpg://{credentials}@127.0.0.1:{self.port}/{database}" + (
            f"?{urlencode(options)}" if options else ""
        )

    def start(self) -> None:
        if not self._initialised:
            self._run(PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER)
            self._initialised = True
            self._require_tls()
        super().start()
        asyncio.run(self._admin(f"ALTER ROLE {PG_USER} PASSWORD '{PG_PASSWORD}'"))
        asyncio.run(self._admin(f"DROP ROLE IF EXISTS {CERT_USER}; CREATE ROLE {CERT_USER} LOGIN"))

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"taskflow_tls_{os.urandom(6).hex()}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        return name

    def _require_tls(self) -> None:
        # The server reads its key only when postgres owns it and nobody else may read it.
        for source in (self.certs.server_cert, self.certs.server_key, self.certs.ca):
            copied = self.data / source.name
            shutil.copyfile(source, copied)
            shutil.chown(copied, user=PG_USER, group=PG_USER)
            copied.chmod(0o600)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n"
                "ssl_ca_file = 'ca.pem'\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {CERT_USER} 127.0.0.1/32 cert\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )

    async def _admin(self, statement: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(host=str(self.dir), port=self.port, user=PG_USER)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
