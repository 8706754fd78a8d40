"""A minimal keep-alive HTTP/1.1 client on asyncio streams.

Far cheaper per request than a full client: the request bytes are built once, and a response is
read as its status line, its headers (only Content-Length, chunked encoding and Connection:
close are looked at) and its body, which is returned unparsed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

READ_LIMIT = 1 << 20
NETWORK_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)

#: Extra header lines of every request, (name, value) pairs: none, or the API key's.
Headers = tuple[tuple[str, str], ...]


def bearer(key: str | None) -> Headers:
    """The headers that send ``key`` (`Authorization: Bearer`); none without a key."""
    return (("Authorization", f"Bearer {key}"),) if key else ()


def task_body(**fields: Any) -> dict[str, Any]:
    """One no-op submission: `debug.echo` with an empty payload."""
    return {"type": "debug.echo", "payload": {}, **fields}


def single_body(**fields: Any) -> bytes:
    """One submission: the no-op of `task_body`, with ``fields`` set over it."""
    return json.dumps(task_body(**fields)).encode()


def batch_body(size: int) -> bytes:
    return json.dumps({"tasks": [task_body() for _ in range(size)]}).encode()


def build_request(
    method: str,
    path: str,
    host: str,
    port: int,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


class Connection:
    """One keep-alive connection; reopened transparently after the server closes it. Every
    request it builds carries ``headers``."""

    def __init__(self, host: str, port: int, headers: Headers = ()) -> None:
        self.host = host
        self.port = port
        self.headers = headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.close()
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=READ_LIMIT
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def exchange(self, raw_request: bytes) -> tuple[int, bytes]:
        """Send a request built by `build_request`; answer (status, body)."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        try:
            self._writer.write(raw_request)
            status, body, close = await _read_response(self._reader)
        except BaseException:
            self.close()  # the stream is in an unknown state
            raise
        if close:
            self.close()
        return status, body

    def build(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The bytes of a request to this connection's server, with its headers."""
        return build_request(method, path, self.host, self.port, body, self.headers)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        return await self.exchange(self.build(method, path, body))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise HttpError(f"not an HTTP/1.x response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    close = b"\r\nconnection: close" in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lower:
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # no length: the body runs to the end of the connection
        body = await reader.read()
        close = True
    return status, body, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def wait_until_up(
    host: str, port: int, path: str, *, timeout: float, alive: Any, headers: Headers = ()
) -> None:
    """Poll GET ``path`` until 200; ``alive()`` raising stops the wait early."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: str = "no answer"
    while loop.time() < deadline:
        alive()
        connection = Connection(host, port, headers)
        try:
            status, _ = await connection.request("GET", path)
            if status == 200:
                return
            last = f"status {status}"
        except NETWORK_ERRORS as exc:
            last = repr(exc)
        finally:
            connection.close()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"http://{host}:{port}{path} did not answer 200 in {timeout:.0f} s ({last})")
