"""The dashboard's pages and actions through Litestar's test client, on the in-memory adapters.

What a browser does with them (the script, the forms, the refresh) is tested in headless
Chromium by tests/integration/test_dashboard_browser.py.
"""

from __future__ import annotations

import asyncio
import fnmatch
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

import taskflow
from taskflow.adapters.memory import (
    InMemoryCancelNotices,
    InMemoryTaskQueue,
    InMemoryTaskRepository,
)
from taskflow.adapters.memory_fleet import InMemoryQueueGauge, InMemoryQueueStore
from taskflow.config import Settings
from taskflow.containers import Container, build_container
from taskflow.domain.fleet import WorkerInfo
from taskflow.domain.model import TaskError
from taskflow.entrypoints.http.app import create_app
from taskflow.entrypoints.http.dashboard.csrf import COOKIE, FIELD
from taskflow.entrypoints.loading import load_registry

Client = TestClient  # type: ignore[type-arg]
SAME_SITE = {"Origin": "http://testserver.local"}
EVIL = "<script>alert('x')</script>"


@pytest.fixture
def container() -> Container:
    built = build_container(Settings(redis_url=None), load_registry(None, debug_tasks=True))
    built.repository.override(providers.Singleton(InMemoryTaskRepository, built.clock))
    built.queue.override(providers.Singleton(InMemoryTaskQueue, built.clock))
    built.cancel_notices.override(providers.Singleton(InMemoryCancelNotices))
    built.queue_gauge.override(providers.Singleton(InMemoryQueueGauge, built.queue, built.clock))
    built.queue_store.override(providers.Singleton(InMemoryQueueStore, built.repository))
    return built


@pytest.fixture
def client(container: Container) -> Iterator[Client]:
    with TestClient(app=create_app(container)) as test_client:
        yield test_client


def submit(client: Client, payload: dict[str, Any], **options: Any) -> str:
    body = {"type": "debug.echo", "payload": payload, **options}
    response = client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def run_one(
    container: Container, *, fail_with: TaskError | None = None, result: Any = None
) -> None:
    """Claim the next task and end its attempt, as a worker would."""

    async def go() -> None:
        service = container.execution_service()
        [task] = await service.claim(["default"], limit=1, timeout=0)
        if fail_with is None:
            await service.succeed(task, result)
        else:
            await service.fail(task, fail_with, final=True, traceback=f"Traceback: {EVIL}")

    asyncio.run(go())


def act(
    client: Client,
    path: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] = SAME_SITE,
    **options: Any,
) -> Any:
    """A dashboard action as its page's form sends it: with this browser's token."""
    if COOKIE not in client.cookies:
        client.get("/dashboard/")
    form = {FIELD: client.cookies[COOKIE], **(data or {})}
    return client.post(path, data=form, headers=headers, **options)


def status_of(client: Client, task_id: str) -> str:
    return str(client.get(f"/api/tasks/{task_id}").json()["status"])


# Pages


def test_every_page_answers_html(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    for path in (
        "/dashboard",
        "/dashboard/",
        "/dashboard/tasks",
        f"/dashboard/tasks/{task_id}",
        "/dashboard/schedules",
        "/dashboard/queues",
        "/dashboard/workers",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert '<main id="main"' in response.text, path


def test_the_assets_are_files_of_the_package(client: Client) -> None:
    css = client.get("/dashboard/static/dashboard.css")
    script = client.get("/dashboard/static/dashboard.js")
    assert (css.status_code, script.status_code) == (200, 200)
    assert ":focus-visible" in css.text
    assert "data-live" in script.text
    page = client.get("/dashboard/").text
    assert "http://" not in page.replace("http://testserver.local", "")
    assert "https://" not in page


def test_the_overview_counts_by_status_and_charts_the_last_hour(
    client: Client, container: Container
) -> None:
    submit(client, {"n": 1})
    submit(client, {"n": 2})
    run_one(container, result={"ok": True})
    run_one(container, fail_with=TaskError("ValueError", "boom"))
    submit(client, {"n": 3})

    page = client.get("/dashboard/").text

    assert '<span class="n">1</span> <span class="label">SUCCESS</span>' in page
    assert '<span class="n">1</span> <span class="label">FAILED</span>' in page
    assert '<span class="n">1</span> <span class="label">PENDING</span>' in page
    assert "1 succeeded, 1 failed, 0 cancelled." in page
    assert page.count('<rect class="succeeded"') == 1
    assert page.count('<rect class="failed"') == 1
    assert ": 50% of 2 failed</title>" in page


def test_the_list_filters_like_the_api(client: Client, container: Container) -> None:
    first = submit(client, {"n": 1}, metadata={"customer": "42"})
    second = submit(client, {"n": 2}, queue="other")
    run_one(container, result=None)

    def listed(query: str) -> set[str]:
        page = client.get(f"/dashboard/tasks?{query}").text
        return {i for i in (first, second) if f"/dashboard/tasks/{i}" in page}

    assert listed("") == {first, second}
    assert listed("status=SUCCESS") == {first}
    assert listed("status=PENDING&status=SUCCESS&type=&queue=") == {first, second}
    assert listed("queue=other") == {second}
    assert listed("metadata=customer%3D42") == {first}
    assert listed("created_after=2000-01-01T00:00") == {first, second}
    assert listed("created_before=2000-01-01T00:00") == set()


def test_the_list_pages_with_the_apis_cursor(client: Client) -> None:
    ids = [submit(client, {"n": n}) for n in range(3)]
    first = client.get("/dashboard/tasks?limit=2").text
    assert [i in first for i in ids] == [False, True, True]
    link = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    older = client.get(link).text
    assert [i in older for i in ids] == [True, False, False]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("status=DONE", "status must be one of"),
        ("queue=no%20spaces", "queue"),
        ("created_after=yesterday", "created_after must be an RFC 3339 timestamp"),
        ("metadata=nokey", "metadata must be KEY=VALUE"),
        ("limit=0", "limit"),
        ("cursor=zzz", "cursor is not one this API gave out"),
    ],
)
def test_a_bad_filter_is_a_400_page_naming_it(client: Client, query: str, named: str) -> None:
    response = client.get(f"/dashboard/tasks?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert named in response.text


def test_lookup_by_id_opens_the_task_page(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    response = client.get(f"/dashboard/lookup?id=+{task_id}+", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/tasks/{task_id}"
    assert client.get(f"/dashboard/lookup?id={uuid.uuid4()}").status_code == 404
    malformed = client.get("/dashboard/lookup?id=abc")
    assert malformed.status_code == 400
    assert "task id must be a UUID" in malformed.text


def test_the_task_page_shows_the_error_its_traceback_and_the_timeline(
    client: Client, container: Container
) -> None:
    task_id = submit(client, {"n": 1})
    run_one(container, fail_with=TaskError("ValueError", "the disk is full"))

    page = client.get(f"/dashboard/tasks/{task_id}").text

    assert "<strong>ValueError</strong>: the disk is full" in page
    assert "Traceback of the latest failed attempt" in page
    assert "<strong>Attempt 1</strong>" in page
    assert "FAILED" in page
    assert 'action="/dashboard/tasks/' + task_id + '/retry"' in page
    assert "This task has no callback URL." in page


def test_everything_shown_from_users_is_escaped(client: Client, container: Container) -> None:
    task_id = submit(client, {"text": EVIL}, metadata={"note": EVIL})
    run_one(container, fail_with=TaskError("ValueError", EVIL))
    done = submit(client, {"n": 1})
    run_one(container, result={"html": EVIL})

    for path in (f"/dashboard/tasks/{task_id}", f"/dashboard/tasks/{done}"):
        page = client.get(path).text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(" in page, path
    failed = client.get(f"/dashboard/tasks/{task_id}").text
    assert failed.count("&lt;script&gt;alert(") >= 4  # payload, edit box, metadata, error


# Actions


def test_an_action_without_an_origin_or_from_another_site_is_refused(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        response = act(client, f"/dashboard/tasks/{task_id}/cancel", headers=headers)
        assert response.status_code == 403, headers
        assert "dashboard action" in response.text
    foreign_referer = {"Referer": "https://evil.example/dashboard/"}
    assert (
        act(client, f"/dashboard/tasks/{task_id}/cancel", headers=foreign_referer).status_code
        == 403
    )
    assert status_of(client, task_id) == "PENDING"


def test_cancel_redirects_to_the_task_page_with_a_notice(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    response = act(
        client, f"/dashboard/tasks/{task_id}/cancel", headers=SAME_SITE, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/tasks/{task_id}?notice=cancelled"
    assert status_of(client, task_id) == "CANCELLED"
    assert "The task is cancelled." in client.get(response.headers["location"]).text
    again = act(client, f"/dashboard/tasks/{task_id}/cancel", headers=SAME_SITE)
    assert again.status_code == 409


def test_retry_with_an_edited_payload(client: Client, container: Container) -> None:
    task_id = submit(client, {"n": 1})
    run_one(container, fail_with=TaskError("ValueError", "boom"))
    referer = {"Referer": f"http://testserver.local/dashboard/tasks/{task_id}"}
    response = act(
        client,
        f"/dashboard/tasks/{task_id}/retry",
        data={"payload": '{"n": 2}'},
        headers=referer,
        follow_redirects=False,
    )
    assert response.status_code == 303
    task = client.get(f"/api/tasks/{task_id}").json()
    assert (task["status"], task["payload"]) == ("PENDING", {"n": 2})
    page = client.get(f"/dashboard/tasks/{task_id}").text
    assert "<strong>Retry</strong> by dashboard, with a new payload" in page


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ("{not json", "payload is not valid JSON"),
        ("[1, 2]", "payload must be a JSON object"),
        ('{"seconds": "soon"}', "payload"),
    ],
)
def test_a_bad_edited_payload_is_a_400_page_and_changes_nothing(
    client: Client, container: Container, payload: str, named: str
) -> None:
    task_id = submit(client, {"seconds": 0.1}, type="debug.sleep")
    run_one(container, fail_with=TaskError("ValueError", "boom"))
    response = act(
        client, f"/dashboard/tasks/{task_id}/retry", data={"payload": payload}, headers=SAME_SITE
    )
    assert response.status_code == 400
    assert named in response.text
    assert status_of(client, task_id) == "FAILED"


def test_retrying_a_pending_task_or_an_unknown_one_is_a_4xx_page(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    assert act(client, f"/dashboard/tasks/{task_id}/retry", headers=SAME_SITE).status_code == 409
    unknown = act(client, f"/dashboard/tasks/{uuid.uuid4()}/retry", headers=SAME_SITE)
    assert unknown.status_code == 404
    assert act(client, "/dashboard/tasks/x/cancel", headers=SAME_SITE).status_code == 400


def test_an_action_goes_back_only_to_a_dashboard_page(client: Client) -> None:
    ids = [submit(client, {"n": n}) for n in range(2)]
    kept = act(
        client,
        f"/dashboard/tasks/{ids[0]}/cancel",
        data={"next": "/dashboard/tasks?status=PENDING&notice=retried"},
        headers=SAME_SITE,
        follow_redirects=False,
    )
    assert kept.headers["location"] == "/dashboard/tasks?status=PENDING&notice=cancelled"
    elsewhere = act(
        client,
        f"/dashboard/tasks/{ids[1]}/cancel",
        data={"next": "//evil.example/dashboard"},
        headers=SAME_SITE,
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == f"/dashboard/tasks/{ids[1]}?notice=cancelled"


# Queues and workers, from the fleet service on the fakes


def beat(container: Container, worker_id: str, *queues: str, running: uuid.UUID) -> None:
    now = datetime.now(UTC)
    info = WorkerInfo(worker_id, "host-a", 7, "0.1.0", queues, 4, (running,), now, now)
    asyncio.run(container.fleet_service().beat(info))


def test_queues_workers_and_pause_read_the_fleet_service(
    client: Client, container: Container
) -> None:
    running = uuid.uuid4()
    beat(container, "w-1", "default", running=running)
    submit(client, {"n": 1})
    submit(client, {"n": 2}, queue="orphan")

    overview = client.get("/dashboard/").text
    assert "Oldest waiting task: <strong>" in overview
    assert "(nothing is waiting)" not in overview
    assert overview.count("no worker consumes it") == 1
    queues = client.get("/dashboard/queues").text
    assert '<tr id="queue-orphan" class="warn">' in queues
    assert '<tr id="queue-default">' in queues
    workers = client.get("/dashboard/workers").text
    assert "host-a" in workers
    assert "1 of 4" in workers
    assert f'href="/dashboard/tasks/{running}"' in workers

    response = act(
        client, "/dashboard/queues/default/pause", headers=SAME_SITE, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/queues?notice=queue_paused"
    assert "Resume default" in client.get(response.headers["location"]).text
    [default] = [q for q in client.get("/api/queues").json()["queues"] if q["name"] == "default"]
    assert default["paused"] is True
    act(client, "/dashboard/queues/default/resume", headers=SAME_SITE)
    assert "Pause default" in client.get("/dashboard/queues").text


def test_a_bad_queue_action_is_a_4xx_page(client: Client) -> None:
    unknown_verb = act(client, "/dashboard/queues/default/stop", headers=SAME_SITE)
    assert unknown_verb.status_code == 404
    bad_name = act(client, "/dashboard/queues/no%20spaces/pause", headers=SAME_SITE)
    assert bad_name.status_code == 400
    assert "queue name" in bad_name.text
    refused = act(client, "/dashboard/queues/default/pause", headers={})
    assert refused.status_code == 403


class CountingRepository(InMemoryTaskRepository):
    stats_read = 0

    async def stats(self, *, tenant: str | None) -> list[Any]:
        CountingRepository.stats_read += 1
        return await super().stats(tenant=tenant)


def test_open_overviews_share_one_count_of_the_store(container: Container) -> None:
    container.repository.override(providers.Singleton(CountingRepository, container.clock))
    CountingRepository.stats_read = 0
    with TestClient(app=create_app(container)) as client:
        for _ in range(5):
            assert client.get("/dashboard/").status_code == 200
    assert CountingRepository.stats_read == 1


def test_the_package_data_holds_every_dashboard_file() -> None:
    root = Path(taskflow.__file__).parent
    with (root.parents[1] / "pyproject.toml").open("rb") as file:
        globs = tomllib.load(file)["tool"]["setuptools"]["package-data"]["taskflow"]
    files = [
        path.relative_to(root).as_posix()
        for path in (root / "entrypoints" / "http" / "dashboard").rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    ]
    assert {"entrypoints/http/dashboard/static/dashboard.js"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/tasks?type=%00",
        "/dashboard/tasks?type=" + "a" * 300,
        "/dashboard/tasks?metadata=%00%3D1",
        "/dashboard/tasks?metadata=%3D1",
        "/dashboard/tasks?status=&type=&queue=&created_after=&metadata=",
        "/dashboard/tasks?created_after=2026-12-01",
        "/dashboard/tasks?created_after=9999-12-31T23:59",
        "/dashboard/tasks?created_before=2026-02-30T10:00",
        "/dashboard/tasks?limit=99999999999999999999",
        "/dashboard/tasks?cursor=%00",
        "/dashboard/tasks?unknown=1",
        "/dashboard/tasks/%00",
        "/dashboard/tasks/" + "f" * 500,
        "/dashboard/lookup",
        "/dashboard/lookup?id=%F0%9F%92%A5",
        "/dashboard/?notice=%3Cscript%3E",
    ],
)
def test_odd_input_is_never_a_server_error(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<script>" not in response.text.split("</head>")[1]


def test_a_date_without_a_time_is_its_midnight_utc(client: Client) -> None:
    task_id = submit(client, {"n": 1})
    assert task_id in client.get("/dashboard/tasks?created_after=2000-01-01").text
    assert task_id not in client.get("/dashboard/tasks?created_before=2000-01-01").text
