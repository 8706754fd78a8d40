"""Bounds on a request's head (its request line and headers), which uvicorn leaves open.

uvicorn's fast parser, httptools, takes a header line of any length and any number of
headers, holding them all in memory; its h11 parser bounds the head but costs every request
several times the CPU. This is uvicorn's httptools protocol with the two bounds added: a head
over ``MAX_HEAD_BYTES`` or with more than ``MAX_HEADERS`` headers is answered 431 and the
connection closed (docs/security.md, "Limits on what a client sends").
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from taskflow.entrypoints.http.corked import CorkedTransport

#: The request line and every header together, in bytes as sent.
MAX_HEAD_BYTES: Final = 16 * 1024
#: Headers in one request.
MAX_HEADERS: Final = 100

#: ``uvicorn.Config(http=...)`` for every server of the API.
PROTOCOL: Final = f"{__name__}:BoundedHttpToolsProtocol"
#: Set in a request's scope once its whole body is in: a handler that reads it then need not
#: guard the read with a deadline (``body_limits.BodyDeadlines``), nothing being left to wait
#: for. Nearly every request's body arrives with its head, before its handler runs.
BODY_IN: Final = "taskflow.body_in"


_TOO_LARGE: Final = f"the request line and headers are over {MAX_HEAD_BYTES} bytes (the limit)"


class _HeadRefused(Exception):
    pass


_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes fed to the parser while a head is being read, and the headers once it
    is whole; marks a request whose body is all in (``BODY_IN``).

    Three overrides, each calling the base class's method directly: every override is a Python
    call on each request, and a check at each header cost the submit path more than the rest of
    this class (docs/performance.md, issue 13). The number of headers is checked when the head
    is whole: until then the byte count bounds what the parser holds.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0  # None: reading a body, not a head
        self._refusal: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # An answer's head and body in one send (``corked``); flow control keeps the socket's.
        self.transport = CorkedTransport(self.transport, self.loop)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        _data_received(self, data)
        # Still in a head (it did not end in this data) and over the limit: the parser has held
        # at most the limit and one read of the transport.
        head = self._head_bytes
        if head is not None and head > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse(_TOO_LARGE)

    def on_headers_complete(self) -> None:
        received, self._head_bytes = self._head_bytes, None
        if len(self.headers) > MAX_HEADERS:
            self._refusal = f"a request may carry at most {MAX_HEADERS} headers (the limit)"
            raise _HeadRefused  # httptools stops parsing; send_400_response answers
        # More bytes came than a head may hold, with this head whole among them (and perhaps
        # a body): the head's own size, as sent near enough, decides.
        if received is not None and received > MAX_HEAD_BYTES:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > MAX_HEAD_BYTES:
                self._refusal = _TOO_LARGE
                raise _HeadRefused
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        scope: Any = self.scope
        scope[BODY_IN] = True
        _on_message_complete(self)
        self._head_bytes = 0  # the next request's head, on this connection

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refusal)

    def _refuse(self, detail: str) -> None:
        body = msgspec.json.encode(
            {"title": "Request Header Fields Too Large", "status": 431, "detail": detail}
        )
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()
