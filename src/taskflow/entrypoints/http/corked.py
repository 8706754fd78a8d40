"""A connection's writes gathered into one send per turn of the event loop (decision 38).

uvicorn writes an answer's status line and headers, then its body, each with a call of its
own, and asyncio sends each at once: two system calls for every answer, which took about a
seventh of a single submission's CPU in the API. ``CorkedTransport`` keeps what is written
until the loop has run the callbacks of its current turn, then sends it all in one call. An
answer whose body follows its head in the same turn (every answer of the API, whose handlers
send both back to back) leaves in one packet; a streamed answer's parts leave one turn late.
What waits never grows past ``MAX_HELD`` bytes: a larger write goes at once, so the socket's
own buffer, and uvicorn's flow control on it, see a large answer as they did.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

#: The most a transport keeps back; more is sent at once.
MAX_HELD: Final = 64 * 1024


class CorkedTransport:
    """Wraps a transport: ``write`` waits for the end of the loop's turn, ``close`` sends
    what waits first; everything else is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._held = 0  # bytes in _pending

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._held += len(data)
        if self._held > MAX_HELD:
            self._flush()

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._held = 0
        self._transport.abort()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._held = 0
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
