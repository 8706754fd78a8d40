"""Hostile requests, sent over a raw socket to a real `taskflow api`: each is refused with a 4xx,
and afterwards the API still answers its liveness probe and still takes a submission."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import Stack, StackFactory

LIMIT = 65_536
TIMEOUT = 2  # TASKFLOW_BODY_TIMEOUT_SECONDS of this API
ECHO = b'{"type": "debug.echo", "payload": {"n": 1}}'


@pytest.fixture(scope="module")
def api(module_stack_factory: StackFactory) -> Stack:
    built = module_stack_factory(
        TASKFLOW_MAX_BODY_BYTES=str(LIMIT), TASKFLOW_BODY_TIMEOUT_SECONDS=str(TIMEOUT)
    )
    built.start_api()
    return built


@pytest.fixture(autouse=True)
def still_serving(api: Stack) -> Iterator[None]:
    yield
    assert httpx.get(f"{api.base_url}/health/live", timeout=30).status_code == 200
    answer = httpx.post(
        f"{api.base_url}/api/tasks", content=ECHO, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 202, f"{answer.text}\n{api.dump_logs()}"


def _connect(api: Stack) -> socket.socket:
    where = urlsplit(api.base_url)
    sock = socket.create_connection((where.hostname, where.port), timeout=60)
    return sock


def _head(length: int | None = None, content_type: str = "application/json", **more: str) -> bytes:
    lines = ["POST /api/tasks HTTP/1.1", "Host: taskflow", f"Content-Type: {content_type}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in more.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, bytes] | None:
    """The first response's status and body; None when the server closed without one."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65_536)
        if not chunk:
            return None
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65_536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1]), body[:length]


def _send(api: Stack, raw: bytes) -> tuple[int, bytes]:
    with _connect(api) as sock:
        sock.sendall(raw)
        answer = _answer(sock)
    assert answer is not None, "the server closed the connection without an answer"
    return answer


def _post(api: Stack, body: bytes, **more: str) -> tuple[int, dict[str, object]]:
    status, text = _send(api, _head(len(body), **more) + body)
    return status, json.loads(text)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"type": "debug.echo", "payload": {"s": "\xff\xfe"}}', "not valid JSON"),
        (b'{"type": "debug.echo", "payload": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nesting"),
        (b'{"type": "debug.echo", "payload": {"n": 1' + b"0" * 400 + b"}}", "out of range"),
        (b'{"type": "debug.echo", "payload": {"n": NaN}}', "NaN and Infinity"),
        (b'{"type": "debug.echo", "payload": {"n": Infinity}}', "NaN and Infinity"),
        (b'{"type": "debug.echo", "payload": {"n": 1, "n": 2}}', "appears twice"),
        (b'{"type": "debug.echo", "payload": {"s": "a\\u0000b"}}', "payload.s"),
        (b'{"type": "debug.echo\\u0000", "payload": {}}', "type must"),
        (b'{"type": "debug.echo", "queue": "q\\u0000", "payload": {}}', "queue must"),
    ],
    ids=["utf8", "deep", "10**400", "nan", "infinity", "duplicate", "nul", "nul-type", "nul-queue"],
)
def test_a_hostile_document_is_400_saying_why(api: Stack, body: bytes, said: str) -> None:
    status, problem = _post(api, body)
    assert status == 400, problem
    assert said in str(problem["detail"])


def test_a_wrong_content_type_is_415(api: Stack) -> None:
    status, _ = _send(api, _head(len(ECHO), content_type="text/plain") + ECHO)
    assert status == 415


def test_an_overlong_idempotency_key_is_400_naming_it(api: Stack) -> None:
    status, problem = _post(api, ECHO, Idempotency_Key="k" * 300)
    assert status == 400
    assert problem["errors"] == [
        {"field": "Idempotency-Key", "message": "an idempotency key must be 1-255 characters"}
    ]


def test_a_body_announced_over_the_limit_is_413_before_it_is_sent(api: Stack) -> None:
    # Only the head and a first kilobyte go out: the answer must not wait for the rest.
    with _connect(api) as sock:
        sock.sendall(_head(10 * LIMIT) + b'{"type": "debug.echo", "payload": {"s": "' + b"x" * 1000)
        answer = _answer(sock)
    assert answer is not None
    assert answer[0] == 413
    assert b"TASKFLOW_MAX_BODY_BYTES" in answer[1]


def test_a_chunked_body_over_the_limit_is_413(api: Stack) -> None:
    chunk = b"x" * 8192
    start = b'{"type": "debug.echo", "payload": {"s": "'
    with _connect(api) as sock:
        sock.sendall(_head(None) + b"%x\r\n%s\r\n" % (len(start), start))
        try:
            for _ in range(2 * LIMIT // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the server answered and closed while the rest was going out
            pass
        answer = _answer(sock)
    assert answer is not None
    assert answer[0] == 413


def test_a_content_length_larger_than_the_body_is_408_after_the_timeout(api: Stack) -> None:
    with _connect(api) as sock:
        sock.sendall(_head(len(ECHO) + 100) + ECHO)  # and then nothing
        answer = _answer(sock)
    assert answer is not None
    assert answer[0] == 408
    assert b"TASKFLOW_BODY_TIMEOUT_SECONDS" in answer[1]


def test_a_content_length_smaller_than_the_body_is_a_4xx(api: Stack) -> None:
    # The body ends where Content-Length says: truncated JSON, then bytes that are no request.
    status, _ = _send(api, _head(len(ECHO) - 10) + ECHO)
    assert status == 400


def test_a_trickling_body_is_cut_off_with_408(api: Stack) -> None:
    body = b'{"type": "debug.echo", "payload": {"s": "' + b"x" * 200 + b'"}}'
    with _connect(api) as sock:
        sock.sendall(_head(len(body)))
        sent = 0
        deadline = time.monotonic() + 60
        while not select.select([sock], [], [], 0.3)[0]:  # a byte each 0.3 s, until answered
            assert time.monotonic() < deadline, "the server waits for a trickling body forever"
            assert sent < len(body), "the whole body went out before any answer"
            sock.sendall(body[sent : sent + 1])
            sent += 1
        answer = _answer(sock)
    assert answer is not None
    assert answer[0] == 408


@pytest.mark.parametrize(
    "headers",
    [
        {"X_Big": "a" * 100_000},
        {f"X_Header_{i}": "1" for i in range(500)},
    ],
    ids=["one-huge-header", "too-many-headers"],
)
def test_an_oversized_head_is_431(api: Stack, headers: dict[str, str]) -> None:
    status, body = _send(api, _head(len(ECHO), **headers) + ECHO)
    assert status == 431
    assert b"the limit" in body
