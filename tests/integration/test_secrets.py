"""Issue 13, items 6 and 8: secrets come from files, and none is ever shown.

Real `taskflow api` and `taskflow worker` processes read the database URL (its password
planted) and the Redis URL (of a throwaway Redis that asks for a planted password) from
``_FILE`` settings, and the webhook key from its variable. The test then goes through
submissions, a failure, refusals, a cancel, a webhook, the metrics, every dashboard page, the
fleet commands and a Redis that goes away, and looks for each planted string in every log
line, response body and header, webhook, page and command output: none is there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import make_url

from tests.integration.conftest import make_stack
from tests.integration.processes import free_port, run_cli, wait_for
from tests.integration.servers import RedisServer
from tests.webhook_receiver import Receiver

DB_PASSWORD = f"PLANTED-db-{uuid.uuid4().hex}"
REDIS_PASSWORD = f"PLANTED-redis-{uuid.uuid4().hex}"
WEBHOOK_KEY = f"PLANTED-webhook-{uuid.uuid4().hex}"
PLANTED = (DB_PASSWORD, REDIS_PASSWORD, WEBHOOK_KEY)


@pytest.fixture
def guarded_redis() -> Iterator[RedisServer]:
    with RedisServer(password=REDIS_PASSWORD) as server:
        yield server


class Seen:
    """Everything a client, an operator or a log reader got to see, by where it came from."""

    def __init__(self, base_url: str) -> None:
        self.texts: list[tuple[str, str]] = []
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        where = f"{method} {url} -> {response.status_code}"
        self.add(where, f"{response.headers}\n{response.text}")
        return response

    def assert_clean(self) -> None:
        assert self.texts
        for where, text in self.texts:
            for planted in PLANTED:
                assert planted not in text, (where, planted, text[:2000])


def test_secrets_from_files_and_no_planted_secret_is_ever_shown(
    pg_database_factory: Callable[[], str], guarded_redis: RedisServer, tmp_path: Path
) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):  # the stack needs the password
        _unauthenticated_ping(guarded_redis)
    dsn = make_url(pg_database_factory()).set(password=DB_PASSWORD).render_as_string(False)
    (tmp_path / "database-url").write_text(dsn + "\n")
    (tmp_path / "redis-url").write_text(guarded_redis.url + "\n")
    worker_port = free_port()
    stack = make_stack(
        "",
        "taskflow",
        tmp_path,
        TASKFLOW_DATABASE_URL_FILE=str(tmp_path / "database-url"),
        TASKFLOW_REDIS_URL="",
        TASKFLOW_REDIS_URL_FILE=str(tmp_path / "redis-url"),
        TASKFLOW_WEBHOOK_SECRET=WEBHOOK_KEY,
        TASKFLOW_CALLBACK_ALLOWED_HOSTS="127.0.0.1",
        TASKFLOW_WORKER_HTTP_PORT=str(worker_port),
    )
    seen = Seen(stack.base_url)
    try:
        worker = stack.start_worker()
        stack.start_api()
        _exercise(stack.env, seen, worker_port)

        guarded_redis.kill()  # what the processes say when Redis goes away
        wait_for(
            lambda: seen.request("GET", "/health/ready").json()["status"] == "degraded",
            timeout=60,
            what="the API to be degraded without Redis",
        )
        seen.request("POST", "/api/tasks", json={"type": "debug.echo", "payload": {}})
        wait_for(
            lambda: "redis" in worker.log_path.read_text().lower(),
            timeout=60,
            what="the worker to log that Redis is gone",
        )
    finally:
        for process in stack.processes:
            process.stop()
        seen.http.close()
    for process in stack.processes:
        seen.add(process.log_path.name, process.log_path.read_text())
    migrated = run_cli(["migrate"], stack.env)
    assert migrated.returncode == 0, migrated.stderr
    assert "database migrated" in migrated.stderr
    seen.add("migrate", migrated.stdout + migrated.stderr)
    unreachable = {**stack.env, "TASKFLOW_DATABASE_URL_FILE": ""}
    unreachable["TASKFLOW_DATABASE_URL"] = (
        make_url(dsn).set(port=free_port()).render_as_string(False)
    )
    failed = run_cli(["migrate"], unreachable)
    assert failed.returncode != 0
    assert DB_PASSWORD in unreachable["TASKFLOW_DATABASE_URL"]
    seen.add("migrate against a closed port", failed.stdout + failed.stderr)

    seen.assert_clean()


def _unauthenticated_ping(server: RedisServer) -> None:
    with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5) as client:
        client.ping()


def _exercise(env: dict[str, str], seen: Seen, worker_port: int) -> None:
    with Receiver(200) as receiver:
        ok = seen.request(
            "POST",
            "/api/tasks",
            json={"type": "debug.echo", "payload": {"a": 1}, "callback_url": receiver.url},
        ).json()
        failing = seen.request(
            "POST",
            "/api/tasks",
            json={"type": "debug.fail", "payload": {"fail_attempts": 9}, "max_retries": 0},
        ).json()
        later = seen.request(
            "POST", "/api/tasks", json={"type": "debug.echo", "payload": {}, "delay_seconds": 3600}
        ).json()
        assert seen.request("POST", f"/api/tasks/{later['id']}/cancel").status_code == 200
        for task in (ok, failing):
            wait_for(
                lambda task=task: (
                    seen.request("GET", f"/api/tasks/{task['id']}").json()["status"]
                    in ("SUCCESS", "FAILED")
                ),
                timeout=60,
                what=f"task {task['id']} to finish",
            )
        wait_for(lambda: bool(receiver.received), timeout=60, what="the webhook")
        for received in receiver.received:
            seen.add("webhook", f"{received.headers}\n{received.body.decode()}")

    # refusals: a validation error, malformed JSON, an unknown type, ids that are not there
    assert seen.request("POST", "/api/tasks", json={"type": 5}).status_code == 400
    bad_json = seen.request(
        "POST", "/api/tasks", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert seen.request("POST", "/api/tasks", json={"type": "no.such"}).status_code == 400
    assert seen.request("GET", "/api/tasks/not-an-id").status_code in (400, 404)
    assert seen.request("GET", f"/api/tasks/{uuid.uuid4()}").status_code == 404
    for path in (
        f"/api/tasks/{failing['id']}",
        f"/api/tasks/{failing['id']}/attempts",
        "/api/tasks",
        "/api/queues",
        "/api/workers",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/dashboard/",
        "/dashboard/tasks",
        f"/dashboard/tasks/{failing['id']}",
        f"/dashboard/tasks/{ok['id']}",
        "/dashboard/queues",
        "/dashboard/workers",
        "/dashboard/schedules",
    ):
        assert seen.request("GET", path).status_code == 200, path
    for path in ("/metrics", "/health/ready"):
        answer = httpx.get(f"http://127.0.0.1:{worker_port}{path}", timeout=30)
        seen.add(f"worker {path}", f"{answer.headers}\n{answer.text}")
    for command in (["workers"], ["queues"], ["status", failing["id"]], ["tasks", "list"]):
        result = run_cli(command, env)
        assert result.returncode in (0, 1), result.stderr
        seen.add(f"taskflow {' '.join(command)}", result.stdout + result.stderr)
