"""The clients against a scripted API (httpx.MockTransport): requests, answers, errors, retries,
waiting and paging. Every test runs on ``Client`` and on ``AsyncClient``."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest

from taskflow.client import (
    ApiError,
    AsyncClient,
    Attempt,
    AttemptOutcome,
    ChangeAction,
    Client,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidSubmission,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RetriedTasks,
    Submission,
    TaskStatus,
    Unavailable,
    new_idempotency_key,
)
from taskflow.client.exchange import MAX_RETRY_PAUSE
from tests.unit.client_fakes import TASK_ID, FakeTime, ScriptedApi, answer, problem, task_json

BASE = "http://api.test"


class Driven:
    """A Client or an AsyncClient, called the same way from a plain test."""

    def __init__(self, kind: str, api: ScriptedApi, time: FakeTime, **options: Any) -> None:
        self.kind = kind
        common = {"transport": api.transport, "clock": time.clock, **options}
        self.client: Client | AsyncClient = (
            Client(BASE, sleep=time.sleep, **common)
            if kind == "sync"
            else AsyncClient(BASE, sleep=time.sleep_async, **common)
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if self.kind == "sync":
            return method  # type: ignore[no-any-return]
        return lambda *args, **kwargs: asyncio.run(method(*args, **kwargs))

    def collect(self, name: str, **options: Any) -> list[Any]:
        """Every item of the iterator ``pages`` or ``iter_tasks`` gives."""
        items = getattr(self.client, name)(**options)
        if self.kind == "sync":
            return list(items)

        async def gather() -> list[Any]:
            return [item async for item in items]

        return asyncio.run(gather())


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def driven(kind: str, time: FakeTime, *answers: Any, **options: Any) -> tuple[Driven, ScriptedApi]:
    api = ScriptedApi(list(answers))
    return Driven(kind, api, time, **options), api


# -- requests and answers ---------------------------------------------------------------------


class Invoice(msgspec.Struct):
    order_id: str
    amount_cents: int


def test_submit_sends_the_fields_given_and_decodes_the_task(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(202, task_json(priority=7)))
    run_at = datetime(2026, 12, 1, 8, tzinfo=UTC)

    task = tf.submit(
        "debug.echo", {"n": 1}, priority=7, queue=None, run_at=run_at, idempotency_key="k-1"
    )

    [request] = api.requests
    assert (request.method, request.url.path) == ("POST", "/api/tasks")
    assert request.headers["Idempotency-Key"] == "k-1"
    assert request.headers["Content-Type"] == "application/json"
    assert api.bodies() == [
        {"type": "debug.echo", "payload": {"n": 1}, "priority": 7, "run_at": "2026-12-01T08:00:00Z"}
    ]
    assert task.id == UUID(TASK_ID)
    assert task.status is TaskStatus.PENDING
    assert task.created_at == datetime(2026, 11, 30, 20, 6, 51, tzinfo=UTC)
    assert (task.priority, task.done) == (7, False)


def test_a_struct_payload_is_sent_as_its_json_object(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(202, task_json()))
    tf.submit("billing.send_invoice", Invoice("A-17", 990))
    assert api.bodies()[0]["payload"] == {"order_id": "A-17", "amount_cents": 990}


def test_submit_many_sends_one_batch_and_returns_the_tasks_in_order(
    kind: str, time: FakeTime
) -> None:
    tasks = [task_json(payload={"n": n}) for n in range(2)]
    tf, api = driven(kind, time, answer(202, {"tasks": tasks}))

    got = tf.submit_many(
        [
            Submission(type="debug.echo", payload={"n": 0}),
            {"type": "debug.echo", "payload": {"n": 1}},
        ],
        idempotency_key="batch-1",
    )

    assert [t.payload for t in got] == [{"n": 0}, {"n": 1}]
    assert api.requests[0].url.path == "/api/tasks/batch"
    assert api.requests[0].headers["Idempotency-Key"] == "batch-1"
    sent = [{"type": "debug.echo", "payload": {"n": n}} for n in range(2)]
    assert api.bodies() == [{"tasks": sent}]


def test_attempts_are_decoded_with_their_outcomes(kind: str, time: FakeTime) -> None:
    attempt = {
        "attempt": 1,
        "worker_id": "host:1:abc",
        "started_at": "2026-11-30T20:07:08.052278Z",
        "finished_at": "2026-11-30T20:07:08.059678Z",
        "outcome": "RETRY",
        "error": {"type": "ValueError", "message": "no", "traceback": "Traceback ..."},
    }
    tf, api = driven(kind, time, answer(200, {"items": [attempt]}))
    [got] = tf.attempts(TASK_ID)
    assert isinstance(got, Attempt)
    assert (got.outcome, got.error and got.error.type) == (AttemptOutcome.RETRY, "ValueError")
    assert api.requests[0].url.path == f"/api/tasks/{TASK_ID}/attempts"


def test_history_gives_the_attempts_and_the_changes_people_made(kind: str, time: FakeTime) -> None:
    change = {
        "action": "RETRY",
        "at": "2026-11-30T21:14:02.511093Z",
        "by": "ana@support",
        "after_attempt": 3,
        "payload_before": {"n": 1},
        "payload_after": {"n": 2},
    }
    tf, _ = driven(kind, time, answer(200, {"items": [], "changes": [change]}))
    history = tf.history(TASK_ID)
    assert history.items == []
    [made] = history.changes
    assert (made.action, made.by, made.after_attempt) == (ChangeAction.RETRY, "ana@support", 3)
    assert (made.payload_before, made.payload_after) == ({"n": 1}, {"n": 2})


def test_the_actor_is_sent_with_every_request(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(202, task_json()), actor="ana@support")
    tf.retry(TASK_ID)
    assert api.requests[0].headers["Taskflow-Actor"] == "ana@support"


def test_retry_sends_a_body_only_when_a_payload_is_given(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(202, task_json()))
    tf.retry(TASK_ID)
    tf.retry(UUID(TASK_ID), {"n": 2})
    assert [r.url.path for r in api.requests] == [f"/api/tasks/{TASK_ID}/retry"] * 2
    assert api.bodies() == [None, {"payload": {"n": 2}}]
    assert "Content-Type" not in api.requests[0].headers


def test_retry_many_sends_the_filters_given_and_reads_the_count(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(200, {"retried": 2, "ids": [TASK_ID, TASK_ID]}))
    retried = tf.retry_many(
        status=["FAILED"],
        queue="billing",
        created_after=datetime(2026, 11, 30, tzinfo=UTC),
        metadata={"customer": "42"},
        limit=10,
    )
    assert retried == RetriedTasks(2, [UUID(TASK_ID)] * 2)
    assert (api.requests[0].method, api.requests[0].url.path) == ("POST", "/api/tasks/retry")
    assert api.bodies() == [
        {
            "status": ["FAILED"],
            "queue": "billing",
            "created_after": "2026-11-30T00:00:00+00:00",
            "metadata": {"customer": "42"},
            "limit": 10,
        }
    ]


def test_list_sends_the_filters_as_query_parameters(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(200, {"items": [task_json()], "next_cursor": None}))
    page = tf.list(
        status=["FAILED", TaskStatus.CANCELLED],
        type="debug.echo",
        metadata={"customer": "42"},
        limit=5,
        cursor="abc",
    )
    assert page.next_cursor is None
    assert [t.id for t in page.items] == [UUID(TASK_ID)]
    assert api.requests[0].url.params.multi_items() == [
        ("status", "FAILED"),
        ("status", "CANCELLED"),
        ("type", "debug.echo"),
        ("limit", "5"),
        ("cursor", "abc"),
        ("metadata.customer", "42"),
    ]


def test_stats_returns_the_counts(kind: str, time: FakeTime) -> None:
    counts = {"items": [{"queue": "q", "type": "t.x", "status": "FAILED", "count": 3}]}
    tf, _ = driven(kind, time, answer(200, counts))
    [count] = tf.stats()
    assert (count.queue, count.status, count.count) == ("q", TaskStatus.FAILED, 3)


def test_the_api_key_and_url_come_from_the_environment(
    kind: str, time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_API_URL", "http://elsewhere.test:9000/")
    monkeypatch.setenv("TASKFLOW_API_KEY", "secret")
    api = ScriptedApi([answer(200, task_json())])
    transport = api.transport
    client: Client | AsyncClient
    if kind == "sync":
        client = Client(transport=transport)
        client.get(TASK_ID)
    else:
        client = AsyncClient(transport=transport)
        asyncio.run(client.get(TASK_ID))
    assert str(api.requests[0].url) == f"http://elsewhere.test:9000/api/tasks/{TASK_ID}"
    assert api.requests[0].headers["Authorization"] == "Bearer secret"


def test_a_task_id_stays_one_path_segment(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, answer(404, problem(404, "no such task")))
    with pytest.raises(NotFound):
        tf.get("../types")
    assert api.requests[0].url.raw_path == b"/api/tasks/..%2Ftypes"


def test_new_idempotency_keys_differ() -> None:
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(UUID(key).version == 4 for key in keys)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (422, IdempotencyKeyReused),
        (429, QuotaExceeded),
        (503, Unavailable),
        (500, ApiError),
        (405, ApiError),
    ],
)
def test_each_error_status_raises_its_class(
    kind: str, time: FakeTime, status: int, raised: type[ApiError]
) -> None:
    tf, _ = driven(kind, time, answer(status, problem(status, "it went wrong")), retries=0)
    with pytest.raises(raised) as caught:
        tf.cancel(TASK_ID)
    assert type(caught.value) is raised
    assert (caught.value.status, caught.value.problem.detail) == (status, "it went wrong")
    assert str(caught.value) == f"HTTP {status}: it went wrong"


def test_a_quota_refusal_is_not_tried_again_and_carries_its_retry_after(
    kind: str, time: FakeTime
) -> None:
    refused = answer(429, problem(429, "tenant 'acme' is over its quota"), {"Retry-After": "3"})
    tf, api = driven(kind, time, refused, answer(202, task_json()), retries=3)
    with pytest.raises(QuotaExceeded) as caught:
        tf.submit("debug.echo", {})
    assert caught.value.retry_after == 3.0
    assert len(api.requests) == 1  # the caller decides whether and when to try again
    assert time.slept == []


def test_a_refused_submission_names_its_fields(kind: str, time: FakeTime) -> None:
    refused = problem(400, "payload.email is required", [("payload.email", "email is required")])
    tf, _ = driven(kind, time, answer(400, refused))
    with pytest.raises(InvalidSubmission) as caught:
        tf.submit("billing.send_invoice", {})
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("payload.email", "email is required")
    ]


def test_a_400_outside_a_submission_is_an_invalid_request_only(kind: str, time: FakeTime) -> None:
    tf, _ = driven(kind, time, answer(400, problem(400, "bad cursor", [("cursor", "bad")])))
    with pytest.raises(InvalidRequest) as caught:
        tf.list(cursor="garbage")
    assert not isinstance(caught.value, InvalidSubmission)
    assert caught.value.errors[0].field == "cursor"


def test_an_answer_that_is_not_a_problem_keeps_its_text(kind: str, time: FakeTime) -> None:
    page = httpx.Response(502, text="<html>bad gateway</html>")
    tf, _ = driven(kind, time, page)
    with pytest.raises(ApiError) as caught:
        tf.get(TASK_ID)
    assert (caught.value.status, caught.value.problem.detail) == (502, "<html>bad gateway</html>")


# -- retries ----------------------------------------------------------------------------------


def unavailable(retry_after: str | None = "2") -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return answer(503, problem(503, "the database is unreachable"), headers)


def test_a_503_is_tried_again_after_its_retry_after(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, unavailable("2"), unavailable("1.5"), answer(202, task_json()))
    key = new_idempotency_key()
    task = tf.submit("debug.echo", {}, idempotency_key=key)
    assert task.id == UUID(TASK_ID)
    assert time.slept == [2.0, 1.5]
    assert [r.headers["Idempotency-Key"] for r in api.requests] == [key] * 3


def test_retry_after_as_a_date_and_without_one(kind: str, time: FakeTime) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    tf, _ = driven(kind, time, unavailable(later), unavailable(None), answer(200, task_json()))
    tf.get(TASK_ID)
    capped, backoff = time.slept
    assert capped == MAX_RETRY_PAUSE  # two minutes asked, the cap waited
    assert backoff == 1.0  # no Retry-After: the second try's backoff


def test_a_503_that_lasts_raises_unavailable_with_its_retry_after(
    kind: str, time: FakeTime
) -> None:
    tf, api = driven(kind, time, unavailable("5"), retries=2)
    with pytest.raises(Unavailable) as caught:
        tf.get(TASK_ID)
    assert caught.value.retry_after == 5.0
    assert len(api.requests) == 3
    assert time.slept == [5.0, 5.0]


def test_a_lost_connection_is_tried_again_only_where_that_is_safe(
    kind: str, time: FakeTime
) -> None:
    broken = httpx.ReadError("connection reset")
    tf, api = driven(kind, time, broken, answer(200, task_json()))
    tf.get(TASK_ID)  # a read: tried again
    assert len(api.requests) == 2

    tf, api = driven(kind, time, broken, answer(202, task_json()))
    with pytest.raises(httpx.ReadError):
        tf.submit("debug.echo", {})  # may have arrived: not sent twice without a key
    assert len(api.requests) == 1

    tf, api = driven(kind, time, broken, answer(202, task_json()))
    tf.submit("debug.echo", {}, idempotency_key="k")  # the key makes sending it twice safe
    assert len(api.requests) == 2

    refused = httpx.ConnectError("connection refused")
    tf, api = driven(kind, time, refused, answer(200, task_json()))
    tf.cancel(TASK_ID)  # never reached the server: safe to send
    assert len(api.requests) == 2


def test_a_connection_that_stays_down_raises_the_httpx_error(kind: str, time: FakeTime) -> None:
    tf, api = driven(kind, time, httpx.ConnectError("refused"), retries=3)
    with pytest.raises(httpx.ConnectError):
        tf.get(TASK_ID)
    assert len(api.requests) == 4
    assert time.slept == [0.5, 1.0, 2.0]


# -- waiting and paging -----------------------------------------------------------------------


def test_wait_polls_less_and_less_often_until_the_task_is_final(kind: str, time: FakeTime) -> None:
    running = [answer(200, task_json("PROCESSING")) for _ in range(5)]
    tf, api = driven(kind, time, *running, answer(200, task_json("SUCCESS", result=1)))
    done = tf.wait(TASK_ID, interval=0.1, max_interval=0.3)
    assert (done.status, done.result) == (TaskStatus.SUCCESS, 1)
    assert len(api.requests) == 6
    assert time.slept == pytest.approx([0.1, 0.15, 0.225, 0.3, 0.3])


def test_wait_gives_up_after_its_timeout(kind: str, time: FakeTime) -> None:
    tf, _ = driven(kind, time, answer(200, task_json("PENDING")))
    with pytest.raises(TimeoutError, match="still PENDING after 5"):
        tf.wait(TASK_ID, timeout=5, interval=1, max_interval=1)
    assert sum(time.slept) == pytest.approx(5)


def pages_of(ids: list[str], size: int) -> Iterator[httpx.Response]:
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        more = start + size < len(ids)
        items = [task_json(id=i) for i in chunk]
        yield answer(200, {"items": items, "next_cursor": f"after-{chunk[-1]}" if more else None})


def test_pages_and_iter_tasks_follow_the_cursor_to_the_end(kind: str, time: FakeTime) -> None:
    ids = [str(UUID(int=n)) for n in range(5)]
    tf, api = driven(kind, time, *pages_of(ids, 2))
    pages = tf.collect("pages", limit=2, queue="q")
    assert [len(p.items) for p in pages] == [2, 2, 1]
    cursors = [r.url.params.get("cursor") for r in api.requests]
    assert cursors == [None, f"after-{ids[1]}", f"after-{ids[3]}"]
    assert all(r.url.params["queue"] == "q" for r in api.requests)

    tf, _ = driven(kind, time, *pages_of(ids, 2))
    assert [str(t.id) for t in tf.collect("iter_tasks", limit=2)] == ids


def test_decoding_ignores_fields_a_newer_api_adds(kind: str, time: FakeTime) -> None:
    tf, _ = driven(kind, time, answer(200, task_json(tenant="acme")))
    assert tf.get(TASK_ID).type == "debug.echo"


def test_the_task_prints_back_as_the_api_wrote_it() -> None:
    from taskflow.client.answers import Task
    from taskflow.entrypoints.cli_output import as_json

    written = task_json(progress={"fraction": 0.5, "message": "half"}, error=None)
    task = msgspec.json.decode(json.dumps(written), type=Task)
    assert as_json(task) == written
