"""An answer's writes leave in one send per turn of the loop (decision 38)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from taskflow.entrypoints.http.corked import MAX_HELD, CorkedTransport
from taskflow.entrypoints.http.head_limits import PROTOCOL, BoundedHttpToolsProtocol


class _Socket(asyncio.Transport):
    """Records each send; closing is recorded too."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sends.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _one_turn() -> None:
    await asyncio.sleep(0)


def test_writes_in_one_turn_leave_in_one_send() -> None:
    async def scenario() -> list[bytes]:
        socket = _Socket()
        corked = CorkedTransport(socket, asyncio.get_running_loop())
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert socket.sends == []  # nothing before the turn ends
        await _one_turn()
        corked.write(b"later")
        await _one_turn()
        return socket.sends

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"later"]


def test_close_sends_what_waits_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[_Socket, _Socket]:
        loop = asyncio.get_running_loop()
        closing, aborting = _Socket(), _Socket()
        corked = CorkedTransport(closing, loop)
        corked.write(b"last words")
        corked.close()
        assert closing.sends == [b"last words"]  # sent, then closed
        assert closing.closed
        dropped = CorkedTransport(aborting, loop)
        dropped.write(b"never")
        dropped.abort()
        await _one_turn()
        return closing, aborting

    closing, aborting = asyncio.run(scenario())
    assert closing.sends == [b"last words"]  # not twice: the turn's end found nothing left
    assert aborting.sends == []
    assert aborting.aborted


def test_the_rest_is_the_wrapped_transports() -> None:
    async def scenario() -> None:
        socket = _Socket()
        corked = CorkedTransport(socket, asyncio.get_running_loop())
        assert corked.get_extra_info("peername") == ("127.0.0.1", 8000)
        assert not corked.is_closing()
        socket.close()
        corked.write(b"too late")
        await _one_turn()
        assert socket.sends == []  # a closing transport is sent nothing more

    asyncio.run(scenario())


def test_the_api_protocol_sends_an_answer_in_one_write() -> None:
    """uvicorn writes the head and the body apart; the API's protocol sends them together."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    async def scenario() -> list[bytes]:
        config = uvicorn.Config(app, http=PROTOCOL, lifespan="off", access_log=False)
        config.load()
        protocol = BoundedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        socket = _Socket()
        protocol.connection_made(socket)
        head = b"POST /api/tasks HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n"
        protocol.data_received(head + b"{}")
        for _ in range(50):
            if socket.sends:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return socket.sends

    sends = asyncio.run(scenario())
    assert len(sends) == 1, sends
    assert sends[0].startswith(b"HTTP/1.1 202")
    assert sends[0].endswith(b"\r\n\r\n{}")


def test_a_large_write_is_not_held_back() -> None:
    """Flow control sees a large answer at once, as without the cork."""

    async def scenario() -> list[bytes]:
        socket = _Socket()
        corked = CorkedTransport(socket, asyncio.get_running_loop())
        corked.write(b"head")
        corked.write(b"x" * MAX_HELD)
        sent_at_once = list(socket.sends)
        await _one_turn()
        assert socket.sends == sent_at_once  # nothing was left for the turn's end
        return sent_at_once

    assert asyncio.run(scenario()) == [b"head" + b"x" * MAX_HELD]
