"""API keys on real processes: `taskflow keys` on the database, `taskflow api` enforcing them."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

import taskflow
from tests.integration.conftest import StackFactory
from tests.integration.processes import Process, free_port, run_cli, wait_for, wait_http_ok

BODY = {"type": "debug.echo", "payload": {"n": 1}}


def _create_key(env: Mapping[str, str], scopes: str) -> tuple[str, str]:
    made = run_cli(["keys", "create", "--name", f"test-{scopes}", "--scopes", scopes], env)
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(": ", 1) for line in made.stdout.splitlines())
    return lines["id"], lines["key"]


def _status(url: str, key: str | None = None) -> int:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{url}/api/tasks", headers=headers, timeout=10).status_code


def test_a_key_made_on_the_command_line_closes_a_running_api(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    stack.start_api()
    assert _status(stack.base_url) == 200  # no key yet, on 127.0.0.1: open
    key_id, submitter = _create_key(stack.env, "submit")
    _, reader = _create_key(stack.env, "read")
    wait_for(lambda: _status(stack.base_url) == 401, timeout=10, what="the API to close")
    assert _status(stack.base_url, "tf_wrong") == 401
    assert _status(stack.base_url, submitter) == 403
    assert _status(stack.base_url, reader) == 200

    with taskflow.Client(stack.base_url, api_key=submitter) as client:
        task = client.submit("debug.echo", {"n": 1})
    shown = run_cli(["tasks", "show", str(task.id)], {**stack.env, "TASKFLOW_API_KEY": reader})
    assert shown.returncode == 0, shown.stderr
    refused = run_cli(["tasks", "show", str(task.id)], stack.env)
    assert refused.returncode == 1
    assert "401" in refused.stderr or "API key" in refused.stderr

    listed = run_cli(["keys", "list", "--json"], stack.env)
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout
    assert submitter not in listed.stdout
    assert reader not in listed.stdout
    assert submitter not in "".join(p.output() for p in stack.processes)  # never logged


def test_a_revoked_key_stops_working_on_every_api_process(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    key_id, key = _create_key(stack.env, "read")
    stack.start_api()
    _, second = stack.start_another_api()
    urls = [stack.base_url, second]
    for url in urls:  # each process has the key's verdict cached now
        assert _status(url, key) == 200
        assert _status(url) == 401
    revoked = run_cli(["keys", "revoke", key_id], stack.env)
    assert revoked.returncode == 0, revoked.stderr
    for url in urls:
        wait_for(lambda u=url: _status(u, key) == 401, timeout=10, what=f"{url} to refuse")
    for url in urls:
        assert [_status(url, key) for _ in range(5)] == [401] * 5


def test_an_open_api_on_a_public_address_refuses_to_start(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    port = str(free_port())
    refused = run_cli(["api", "--host", "0.0.0.0", "--port", port], stack.env, timeout=60)
    assert refused.returncode != 0
    assert "no API key exists" in refused.stderr
    assert "TASKFLOW_AUTH=disabled" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_disabled_auth_starts_on_a_public_address_and_warns(stack_factory: StackFactory) -> None:
    stack = stack_factory()
    port = free_port()
    env = {**stack.env, "TASKFLOW_AUTH": "disabled"}
    _create_key(env, "read")  # keys exist, and still nothing is checked
    api = Process(["api", "--host", "0.0.0.0", "--port", str(port)], env, stack.logs / "open.log")
    stack.processes.append(api)
    wait_http_ok(f"http://127.0.0.1:{port}/health/live", timeout=60, process=api)
    assert _status(f"http://127.0.0.1:{port}") == 200
    assert "authentication is disabled" in api.output()
