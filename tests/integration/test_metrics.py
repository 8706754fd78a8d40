"""Metrics end to end (decision 26): real `taskflow api` and `taskflow worker` processes on
PostgreSQL and Redis, their `/metrics` parsed with prometheus-client's own parser as tasks run."""

from __future__ import annotations

import socket
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import StackFactory
from tests.integration.processes import free_port, run_cli, wait_for, wait_http_ok
from tests.integration.test_auth import _create_key

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Scrape:
    # A connection per scrape: with several API processes, each may answer.
    response = httpx.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found: Scrape, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def submit(url: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{url}/api/tasks", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_counters_and_histograms_move_as_real_tasks_run(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    api = stack.base_url
    worker_port = free_port()
    worker_url = f"http://127.0.0.1:{worker_port}"
    worker = stack.start_worker(env={"TASKFLOW_WORKER_HTTP_PORT": str(worker_port)})
    stack.start_api()
    wait_http_ok(f"{worker_url}/health/ready", timeout=60, process=worker)
    assert httpx.get(f"{worker_url}/health/live", timeout=10).json() == {"status": "ok"}
    before_api, before_worker = scrape(api), scrape(worker_url)

    echo = [submit(api, {"type": "debug.echo", "payload": {"n": n}}) for n in range(5)]
    failing = [
        submit(api, {"type": "debug.fail", "payload": {"fail_attempts": 5}, "max_retries": 0})
        for _ in range(2)
    ]  # fail for good on their first attempt
    flaky = submit(api, {"type": "debug.fail", "payload": {"fail_attempts": 1}, "max_retries": 2})
    done = stack.wait_status([*echo, *failing, flaky])
    assert [t["status"] for t in done] == ["SUCCESS"] * 5 + ["FAILED"] * 2 + ["SUCCESS"]

    def moved(found: Scrape, name: str, before: Scrape, **labels: str) -> float:
        return value(found, name, **labels) - value(before, name, **labels)

    echo_labels = {"type": "debug.echo", "queue": "default"}
    fail_labels = {"type": "debug.fail", "queue": "default"}
    after_api = scrape(api)
    assert moved(after_api, "taskflow_tasks_submitted_total", before_api, **echo_labels) == 5
    assert moved(after_api, "taskflow_tasks_submitted_total", before_api, **fail_labels) == 3

    # The worker's outcomes are written a moment after the task's final state is readable.
    def worker_counted() -> Scrape | None:
        found = scrape(worker_url)
        counted = moved(found, "taskflow_tasks_succeeded_total", before_worker, **fail_labels)
        return found if counted == 1 else None

    after = wait_for(worker_counted, timeout=30, interval=0.2, what="the worker's counters")
    assert moved(after, "taskflow_tasks_succeeded_total", before_worker, **echo_labels) == 5
    assert moved(after, "taskflow_tasks_failed_total", before_worker, **fail_labels) == 2
    assert moved(after, "taskflow_tasks_retried_total", before_worker, **fail_labels) == 1
    assert moved(after, "taskflow_tasks_failed_total", before_worker, **echo_labels) == 0
    for name in ("taskflow_task_run_seconds_count", "taskflow_task_queue_wait_seconds_count"):
        assert moved(after, name, before_worker, type="debug.echo") == 5
        assert moved(after, name, before_worker, type="debug.fail") == 4  # 3 tasks, a retry
    # Each process counts what it did: the API ran nothing, the worker submitted nothing.
    assert value(after_api, "taskflow_tasks_succeeded_total", **echo_labels) == 0
    assert value(after, "taskflow_tasks_submitted_total", **echo_labels) == 0

    # HTTP latency, by the route's template: one label for every task read, never an id.
    route = {"method": "GET", "route": "/api/tasks/{task_id}", "status": "200"}
    assert value(after_api, "taskflow_http_request_duration_seconds_count", **route) >= 8
    post = {"method": "POST", "route": "/api/tasks", "status": "202"}
    assert moved(after_api, "taskflow_http_request_duration_seconds_count", before_api, **post) == 8
    assert not any(echo[0] in dict(labels).get("route", "") for _, labels in after_api)


def test_the_api_gauges_follow_the_live_workers_and_the_queues(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(TASKFLOW_WORKER_HEARTBEAT_SECONDS="0.2")
    api = stack.base_url
    stack.start_api()
    assert value(scrape(api), "taskflow_workers_alive") == 0
    worker = stack.start_worker("--queues", "default")
    wait_for(lambda: value(scrape(api), "taskflow_workers_alive") == 1, timeout=30, what="a worker")
    for _ in range(3):
        submit(api, {"type": "debug.echo", "payload": {}, "queue": "nobody"})
    [served] = [submit(api, {"type": "debug.echo", "payload": {}})]
    stack.wait_status([served], {"SUCCESS"})

    found = scrape(api)
    assert value(found, "taskflow_fleet_up") == 1
    assert value(found, "taskflow_queue_depth", queue="nobody", state="ready") == 3
    assert value(found, "taskflow_queue_unconsumed", queue="nobody") == 1
    assert value(found, "taskflow_queue_consumers", queue="default") == 1
    assert value(found, "taskflow_queue_unconsumed", queue="default") == 0

    assert worker.stop() == 0
    wait_for(
        lambda: value(scrape(api), "taskflow_workers_alive") == 0, timeout=30, what="none alive"
    )


def test_a_cancel_of_a_waiting_task_is_counted_by_the_api(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api()
    task_id = submit(stack.base_url, {"type": "debug.echo", "payload": {}, "delay_seconds": 600})
    response = httpx.post(f"{stack.base_url}/api/tasks/{task_id}/cancel", timeout=10)
    assert response.json()["status"] == "CANCELLED"
    found = scrape(stack.base_url)
    assert value(found, "taskflow_tasks_cancelled_total", type="debug.echo", queue="default") == 1


def test_several_api_processes_each_answer_the_sum_of_all(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api(env={"TASKFLOW_API_PROCESSES": "3"})
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        for n in range(30):
            response = client.post(
                "/api/tasks",
                json={"type": "debug.echo", "payload": {"n": n}},
                headers={"Connection": "close"},  # spread over the processes
            )
            assert response.status_code == 202, response.text
    labels = {"type": "debug.echo", "queue": "default"}
    for _ in range(10):
        found = scrape(stack.base_url)
        assert value(found, "taskflow_tasks_submitted_total", **labels) == 30
        route = {"method": "POST", "route": "/api/tasks", "status": "202"}
        assert value(found, "taskflow_http_request_duration_seconds_count", **route) == 30


def test_a_bad_worker_http_port_stops_the_worker_with_one_line(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    done = run_cli(["worker"], {**stack.env, "TASKFLOW_WORKER_HTTP_PORT": "nine"}, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "TASKFLOW_WORKER_HTTP_PORT" in lines[0]


def test_a_taken_worker_http_port_stops_the_worker_with_one_line(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(["worker"], {**stack.env, "TASKFLOW_WORKER_HTTP_PORT": str(port)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"taskflow: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_worker_that_cannot_reach_redis_is_live_but_not_ready(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    port = free_port()
    no_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    worker = stack.start_worker(
        env={"TASKFLOW_WORKER_HTTP_PORT": str(port), "TASKFLOW_REDIS_URL": no_redis}
    )
    wait_http_ok(f"http://127.0.0.1:{port}/health/live", timeout=60, process=worker)
    response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unavailable"
    assert report["checks"]["database"]["status"] == "up"
    assert report["checks"]["queue"]["status"] == "down"
    # Its own counters are still served.
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200


def test_with_metrics_auth_the_workers_metrics_ask_for_a_read_key_as_the_apis_do(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(TASKFLOW_METRICS_AUTH="true")
    port = free_port()
    worker_url = f"http://127.0.0.1:{port}"
    worker = stack.start_worker(env={"TASKFLOW_WORKER_HTTP_PORT": str(port)})
    stack.start_api()
    wait_http_ok(f"{worker_url}/health/ready", timeout=60, process=worker)
    urls = [stack.base_url, worker_url]
    assert [_metrics_status(url) for url in urls] == [200, 200]  # no key yet: open
    _, reader = _create_key(stack.env, "read")
    _, submitter = _create_key(stack.env, "submit")

    def closed() -> bool:
        return [_metrics_status(url) for url in urls] == [401, 401]

    wait_for(closed, timeout=10, what="/metrics to ask for a key")
    for url in urls:
        refused = httpx.get(f"{url}/metrics", timeout=10)
        assert refused.headers["www-authenticate"] == "Bearer"
        assert _metrics_status(url, "tf_wrong") == 401
        assert _metrics_status(url, submitter) == 403
        assert _metrics_status(url, reader) == 200
        assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
    assert httpx.get(f"{worker_url}/health/ready", timeout=10).status_code == 200
    assert reader not in worker.output()  # never logged


def _metrics_status(url: str, key: str | None = None) -> int:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{url}/metrics", headers=headers, timeout=10).status_code
