"""Limits on what a client sends, through Litestar's test client on the in-memory adapters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from dependency_injector import providers
from hypothesis import given
from hypothesis import strategies as st
from litestar.exceptions import HTTPException
from litestar.testing import TestClient
from uvicorn.server import ServerState

from taskflow.adapters.memory import InMemoryTaskQueue, InMemoryTaskRepository
from taskflow.config import Settings
from taskflow.containers import build_container
from taskflow.domain import json_limits
from taskflow.domain.errors import InvalidSubmission
from taskflow.domain.json_limits import (
    MAX_JSON_DEPTH,
    MAX_JSON_INTEGER,
    Recode,
    json_problem,
    recode_json,
    too_deep,
)
from taskflow.entrypoints.http import body_limits
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.body_limits import BodyDeadlines
from taskflow.entrypoints.http.dashboard.forms import edited_payload
from taskflow.entrypoints.http.head_limits import BODY_IN, PROTOCOL, BoundedHttpToolsProtocol
from taskflow.entrypoints.loading import load_registry

JSON = {"content-type": "application/json"}
DEEP = b'{"type": "debug.echo", "payload": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"


@pytest.fixture
def client() -> Iterator[TestClient]:  # type: ignore[type-arg]
    container = build_container(Settings(), load_registry(None, debug_tasks=True))
    container.repository.override(providers.Singleton(InMemoryTaskRepository, container.clock))
    container.queue.override(providers.Singleton(InMemoryTaskQueue, container.clock))
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def _refused(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["detail"])


def _nested(depth: int) -> bytes:
    return b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1)


# --- the document checks ---


def test_nesting_up_to_the_limit_passes_and_one_more_is_refused() -> None:
    assert json_problem(_nested(MAX_JSON_DEPTH)) is None
    where, why = json_problem(_nested(MAX_JSON_DEPTH + 1)) or ("", "")
    assert where == "body"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in why


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"s": "[" * 500, "t": 'x\\"{' * 100}).encode()
    assert json_problem(text) is None


@pytest.mark.parametrize(
    "number", [str(MAX_JSON_INTEGER + 1), str(-(2**63) - 1), "1" + "0" * 400, "9" * 5000]
)
def test_integers_beyond_64_bits_are_refused_naming_the_range(number: str) -> None:
    where, why = json_problem(b'{"a": [1, %s]}' % number.encode()) or ("", "")
    assert where == "body"
    assert "out of range" in why
    assert str(MAX_JSON_INTEGER) in why


def test_the_64_bit_bounds_and_long_digit_strings_pass() -> None:
    text = b'{"a": %d, "b": %d, "c": "%s", "d": 1.%s}' % (
        MAX_JSON_INTEGER,
        -(2**63),
        b"1" * 50,
        b"1" * 50,
    )
    assert json_problem(text) is None


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1, "a": 2}',
        b'{"a" : 1, "a":2}',
        b'{"a"\n:1,"a"\t:2}',
        b'{"\\u0061": 1, "a": 2}',
        b'{"a:b": 1, "a:b": 2}',
        b'{"k": ":x", "k": 1}',
        b'{"tasks": [{"type": "x", "payload": {}, "type": "y"}]}',
    ],
)
@pytest.mark.parametrize("padding", [0, 5000], ids=["small", "large"])
def test_a_key_twice_in_one_object_is_refused(text: bytes, padding: int) -> None:
    where, why = json_problem(text[:-1] + b" " * padding + text[-1:]) or ("", "")
    assert where == "body"
    assert "appears twice in one object" in why


def test_the_same_key_in_two_objects_is_fine() -> None:
    assert json_problem(b'{"x": {"a": 1}, "y": {"a": 1}, "z": "a"}') is None


_KEYS = st.sampled_from(["a", "b", "a:b", ":", "\\u0061", 'q\\"', " "])
_LEAVES = st.one_of(st.integers(-5, 5).map(str), _KEYS.map(lambda k: f'"{k}"'))


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text whose objects may repeat a key, however it is written."""
    if depth > 2 or draw(st.booleans()):
        return draw(_LEAVES)
    members = draw(st.lists(st.tuples(_KEYS, st.just(depth)), max_size=4))
    spaces = draw(st.sampled_from(["", " ", "\n"]))
    parts = [f'"{key}"{spaces}:{draw(_documents(level + 1))}' for key, level in members]
    return "{" + ",".join(parts) + "}"


def _has_duplicate(text: str) -> bool:
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len(dict(items)) != len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found


RECODES = pytest.mark.parametrize("recode", [recode_json, body_limits._recode], ids=["json", "api"])


@RECODES
@given(text=_documents(), padding=st.integers(0, 5000))
def test_duplicate_keys_are_found_exactly(text: str, padding: int, recode: Recode) -> None:
    document = (text + " " * padding).encode()
    refused = json_problem(document, recode)
    assert (refused is not None) == _has_duplicate(text), text


@RECODES
@given(texts=st.lists(_documents(), min_size=2, max_size=6))
def test_duplicate_keys_are_found_exactly_in_a_batch(texts: list[str], recode: Recode) -> None:
    tasks = ", ".join(f'{{"type": "t", "payload": {t}}}' for t in texts)
    text = f'{{"tasks": [{tasks}]}}'
    refused = json_problem(text.encode(), recode)
    assert (refused is not None) == _has_duplicate(text), text


def test_a_batch_whose_tasks_share_their_keys_is_cleared_without_parsing_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parsed(*args: Any) -> None:
        raise AssertionError("parsed again to find duplicate keys")

    monkeypatch.setattr(json_limits, "_unique_keys", parsed)
    batch = {"tasks": [{"type": "debug.echo", "payload": {"n": i}} for i in range(500)]}
    assert json_problem(json.dumps(batch).encode(), body_limits._recode) is None


def _depth_by_loop(document: bytes) -> int:
    deepest = depth = 0
    inside = escaped = False
    for byte in document:
        if inside:
            escaped, inside = (False, True) if escaped else (byte == 92, byte != 34)
        elif byte == 34:
            inside = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


# Brackets, and whole strings holding brackets, escaped quotes and escaped backslashes.
_STRINGS = st.lists(st.sampled_from(["[", "]", "{", "}", "a", '\\"', "\\\\"]), max_size=6)
_PIECES = st.one_of(
    st.sampled_from(["[", "]", "{", "}", "1", ","]),
    _STRINGS.map(lambda parts: '"' + "".join(parts) + '"'),
)


@given(st.lists(_PIECES, max_size=200), st.integers(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 3))
def test_nesting_is_measured_as_a_parser_counts_it(pieces: list[str], levels: int) -> None:
    """Paired or not, quoted brackets aside: what a decoder would descend into."""
    document = ("[" * levels + "".join(pieces) + "]" * levels).encode()
    deepest = _depth_by_loop(document)
    assert too_deep(document) == (deepest > MAX_JSON_DEPTH), document


# --- through the API ---


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/tasks", DEEP),
        ("/api/tasks/batch", b'{"tasks": [' + DEEP + b"]}"),
        ("/api/tasks/retry", b'{"status": "FAILED", "x": ' + b"[" * 10_000 + b"}"),
        ("/api/tasks/00000000-0000-0000-0000-000000000000/retry", b'{"payload": ' + DEEP + b"}"),
    ],
)
def test_a_deeply_nested_body_is_400_on_every_route_that_takes_one(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    body: bytes,
) -> None:
    response = client.post(path, content=body, headers=JSON)
    assert "nesting is deeper than 64 levels" in _refused(response)
    assert response.json()["errors"][0]["field"] == "body"
    assert client.get("/health/live").status_code == 200


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"type": "debug.echo", "payload": {"n": 1' + b"0" * 400 + b"}}", "out of range"),
        (b'{"type": "debug.echo", "payload": {"n": 1, "n": 2}}', "'n' appears twice"),
        (b'{"type": "debug.echo", "type": "debug.sleep", "payload": {}}', "'type' appears twice"),
        (b'{"type": "debug.echo", "payload": {"n": NaN}}', "NaN and Infinity are not JSON"),
        (b'{"type": "debug.echo", "payload": {"n": -Infinity}}', "NaN and Infinity are not JSON"),
        (b'{"type": "debug.echo", "payload": {"n": 1e400}}', "must be finite"),
        (b'{"type": "debug.echo", "payload": {"n": "\xff"}}', "not valid JSON"),
    ],
)
def test_hostile_numbers_keys_and_bytes_are_400_saying_why(
    client: TestClient,  # type: ignore[type-arg]
    body: bytes,
    said: str,
) -> None:
    assert said in _refused(client.post("/api/tasks", content=body, headers=JSON))


def test_a_retry_body_that_is_not_json_is_415(client: TestClient) -> None:  # type: ignore[type-arg]
    path = "/api/tasks/00000000-0000-0000-0000-000000000000/retry"
    response = client.post(path, content=b"payload=1", headers={"content-type": "text/plain"})
    _refused(response, 415)


def test_a_body_over_the_limit_closes_the_connection(client: TestClient) -> None:  # type: ignore[type-arg]
    big = b'{"type": "debug.echo", "payload": {"s": "' + b"x" * 9_000_000 + b'"}}'
    response = client.post("/api/tasks", content=big, headers=JSON)
    assert "TASKFLOW_MAX_BODY_BYTES" in _refused(response, 413)
    assert response.headers["connection"] == "close"


def test_a_recursion_error_is_a_400_not_a_500(client: TestClient) -> None:  # type: ignore[type-arg]
    # The last guard, should a decoder recurse past the stack below the nesting limit.
    app: Any = client.app
    handler = app.exception_handlers[Exception]
    response = handler(None, RecursionError("maximum recursion depth exceeded"))
    assert response.status_code == 400


def test_a_deep_edited_payload_on_the_dashboard_is_refused() -> None:
    with pytest.raises(InvalidSubmission, match="nesting is deeper"):
        edited_payload({"payload": "[" * 5000 + "]" * 5000})


# --- a body that does not come ---


class _StalledRequest:
    scope: dict[str, Any] = {}

    async def body(self) -> bytes:
        await asyncio.Event().wait()
        return b""


class _QuickRequest:
    scope: dict[str, Any] = {}

    async def body(self) -> bytes:
        return b"{}"


class _ArrivedRequest(_StalledRequest):
    """A body the server marked as all in, but whose read takes a while all the same."""

    scope = {BODY_IN: True}


def test_a_body_that_does_not_arrive_in_time_is_408_and_closes() -> None:
    async def scenario() -> HTTPException:
        deadlines = BodyDeadlines(0.2)
        assert await deadlines.read(_QuickRequest()) == b"{}"  # type: ignore[arg-type]
        with pytest.raises(HTTPException) as caught:
            await asyncio.wait_for(deadlines.read(_StalledRequest()), 30)  # type: ignore[arg-type]
        return caught.value

    refused = asyncio.run(scenario())
    assert refused.status_code == 408
    assert "TASKFLOW_BODY_TIMEOUT_SECONDS" in str(refused.detail)
    assert refused.headers == {"Connection": "close"}


def test_a_body_the_server_marked_as_in_is_read_without_a_deadline() -> None:
    async def scenario() -> None:
        deadlines = BodyDeadlines(0.05)
        reading = asyncio.ensure_future(deadlines.read(_ArrivedRequest()))  # type: ignore[arg-type]
        done, _ = await asyncio.wait({reading}, timeout=0.5)  # ten deadlines
        assert not done  # not cut off: its read was never registered
        reading.cancel()

    asyncio.run(scenario())


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.mark.parametrize(("pieces", "marked"), [(1, True), (2, False)])
def test_the_server_marks_a_request_whose_body_came_with_its_head(
    pieces: int, marked: bool
) -> None:
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(BODY_IN in scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        config = uvicorn.Config(app, http=PROTOCOL, lifespan="off", access_log=False)
        config.load()
        protocol = BoundedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(_Transport())
        request = b"POST /api/tasks HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
        protocol.data_received(request[: len(request) - pieces + 1])  # all, or all but one
        for _ in range(20):
            if seen:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)

    asyncio.run(scenario())
    assert seen == [marked]


def test_the_body_timeout_is_a_setting() -> None:
    assert Settings.from_env({}).body_timeout_seconds == 30.0
    settings = Settings.from_env({"TASKFLOW_BODY_TIMEOUT_SECONDS": "2.5"})
    assert settings.body_timeout_seconds == 2.5
