"""The benchmark's `--auth`: the option, the header that carries the key on every client the
benchmark uses (its load generators included), and the check that the API under test really
refuses a request without the key. Against a small HTTP server in this process; the real API
with a real key is tests/integration/test_benchmark_smoke.py's."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from benchmarks.auth import PROBE, check_enforced
from benchmarks.bench import Params
from benchmarks.client import Connection, bearer, build_request, single_body
from benchmarks.deploy import HOST, Deployment
from benchmarks.load import ClosedLoopSpec, closed_loop, steady, submit_all
from benchmarks.report import Report, build_header, render
from benchmarks.run import parse_args

KEY = "tf_bench-test-key"


def test_auth_is_off_unless_asked_for() -> None:
    assert parse_args([]).auth is False
    assert parse_args(["--auth", "--phases", "submit,batch"]).auth is True


def test_auth_with_key_checks_disabled_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--auth", "--env", "TASKFLOW_AUTH=disabled"])
    assert exited.value.code == 2
    assert "drop --env TASKFLOW_AUTH=disabled" in capsys.readouterr().err


def test_without_a_key_the_request_bytes_are_what_they_always_were() -> None:
    assert bearer(None) == ()
    assert build_request("POST", "/api/tasks", HOST, 8000, b"{}", bearer(None)) == (
        b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )


def test_with_a_key_every_request_carries_it() -> None:
    raw = Connection(HOST, 8000, bearer(KEY)).build("GET", "/api/tasks")
    expected = "GET /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    assert raw == f"{expected}Authorization: Bearer {KEY}\r\n\r\n".encode()


def test_a_deployment_without_auth_has_no_key(tmp_path: Path) -> None:
    assert Deployment(logs=tmp_path).headers == ()
    assert Deployment(logs=tmp_path, auth=True).headers == ()  # until create() makes it


@pytest.mark.parametrize(("auth", "line"), [(False, "- API keys: off"), (True, "- API keys: on")])
def test_the_report_says_whether_auth_was_on(tmp_path: Path, auth: bool, line: str) -> None:
    deploy = Deployment(logs=tmp_path, auth=auth)
    header = build_header(deploy, Params(), ["submit"], ["--auth"] if auth else [])
    assert render(Report(header, Params(), [])).count(line) == 1


# -- against a server --------------------------------------------------------------------------


@dataclass
class FakeApi:
    """Answers GET with 200 and POST with 202, or 401 to a request without ``key`` when one
    is set; remembers each request's Authorization header."""

    key: str | None = None
    port: int = 0
    seen: list[str | None] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                headers = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if line
                )
                await reader.readexactly(int(headers.get("Content-Length", "0")))
                auth = headers.get("Authorization")
                self.seen.append(auth)
                status, body = self._answer(head.split(b" ", 1)[0], auth)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, method: bytes, auth: str | None) -> tuple[int, bytes]:
        if self.key is not None and auth != f"Bearer {self.key}":
            return 401, b"{}"
        if method == b"GET":
            return 200, b"{}"
        return 202, json.dumps({"id": "t"}).encode()


Serve = Callable[[FakeApi], Awaitable[FakeApi]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(api: FakeApi) -> FakeApi:
        server = await asyncio.start_server(api.handle, HOST, 0)
        servers.append(server)
        api.port = server.sockets[0].getsockname()[1]
        return api

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_an_api_that_refuses_without_the_key_passes_the_check(serve: Serve) -> None:
    api = await serve(FakeApi(KEY))
    await check_enforced(HOST, api.port, bearer(KEY))
    assert api.seen == [None, f"Bearer {KEY}"]


async def test_an_open_api_fails_the_check_loudly(serve: Serve) -> None:
    api = await serve(FakeApi())
    with pytest.raises(RuntimeError, match=r"without a key with 200, not 401: it does not check"):
        await check_enforced(HOST, api.port, bearer(KEY))


async def test_an_api_that_refuses_the_key_fails_the_check(serve: Serve) -> None:
    api = await serve(FakeApi("tf_another-key"))
    with pytest.raises(RuntimeError, match=re.escape(f"GET {PROBE} with the benchmark's key")):
        await check_enforced(HOST, api.port, bearer(KEY))


async def test_the_bulk_and_steady_clients_send_the_key(serve: Serve) -> None:
    api = await serve(FakeApi(KEY))
    headers = bearer(KEY)
    bodies = [single_body()] * 6
    assert await submit_all(HOST, [api.port], "/api/tasks", bodies, 3, headers) == 6
    sent = await steady(HOST, api.port, "/api/tasks", bodies, rate=200, headers=headers)
    sent.check()
    assert api.seen == [f"Bearer {KEY}"] * 12


async def test_the_client_processes_send_the_key(serve: Serve) -> None:
    api = await serve(FakeApi(KEY))
    spec = ClosedLoopSpec(
        HOST, (api.port,), "/api/tasks", single_body(), 2, 0.0, 0.3, headers=bearer(KEY)
    )
    load = await closed_loop(spec, 1)
    assert load.ok > 0
    assert load.problems() == "none"  # not a single 401
    assert set(api.seen) == {f"Bearer {KEY}"}
