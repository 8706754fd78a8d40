"""`taskflow retry ID --payload`, `taskflow tasks retry` and the CLI's URL and actor, against a
scripted API: what each sends and prints (tests/integration/test_client.py runs them for real)."""

from __future__ import annotations

import functools
import getpass
import json
import socket

import pytest

from taskflow.client import Client
from taskflow.entrypoints import cli, cli_api
from tests.unit.client_fakes import TASK_ID, FakeTime, ScriptedApi, answer, problem, task_json


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ScriptedApi:
    scripted = ScriptedApi([])
    client = functools.partial(Client, transport=scripted.transport, sleep=FakeTime().sleep)
    monkeypatch.setattr(cli_api, "Client", client)
    return scripted


def test_retry_with_a_payload_sends_it_and_prints_the_task(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(202, task_json(payload={"n": 2})))
    code = cli.main(["retry", TASK_ID, "--payload", '{"n": 2}', "--url", "http://api.test"])
    assert code == 0
    assert api.bodies() == [{"payload": {"n": 2}}]
    actor = api.requests[0].headers["Taskflow-Actor"]
    assert actor == f"cli:{getpass.getuser()}@{socket.gethostname()}"
    assert json.loads(capsys.readouterr().out) == task_json(payload={"n": 2})


def test_retry_without_a_payload_sends_no_body(api: ScriptedApi) -> None:
    api.answers.append(answer(202, task_json()))
    assert cli.main(["retry", TASK_ID, "--url", "http://api.test"]) == 0
    assert api.bodies() == [None]


def test_tasks_retry_sends_the_filters_and_prints_the_count(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(200, {"retried": 2, "ids": [TASK_ID, TASK_ID]}))
    args = ["tasks", "retry", "--status", "FAILED", "--queue", "billing", "--limit", "5"]
    args += ["--metadata", "customer=42"]
    code = cli.main([*args, "--created-after", "2026-11-30T00:00:00Z", "--url", "http://x.test"])
    assert code == 0
    assert api.bodies() == [
        {
            "status": ["FAILED"],
            "queue": "billing",
            "created_after": "2026-11-30T00:00:00Z",
            "metadata": {"customer": "42"},
            "limit": 5,
        }
    ]
    assert capsys.readouterr().out == f"retried 2 tasks\nID\n{TASK_ID}\n{TASK_ID}\n"


def test_tasks_retry_json_prints_the_answer(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(200, {"retried": 1, "ids": [TASK_ID]}))
    assert cli.main(["tasks", "retry", "--json", "--url", "http://x.test"]) == 0
    assert api.bodies() == [{}]
    assert json.loads(capsys.readouterr().out) == {"retried": 1, "ids": [TASK_ID]}


def test_a_submission_over_its_quota_is_one_line_and_no_second_try(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = "tenant 'acme' is over its quota of 5/s (burst 5): 1 task refused; try again in 2 s"
    api.answers.append(answer(429, problem(429, detail), {"Retry-After": "2"}))
    api.answers.append(answer(202, task_json()))
    assert cli.main(["submit", "debug.echo", "--url", "http://x.test"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"taskflow: error: HTTP 429: {detail}\n"
    assert captured.out == ""
    assert len(api.requests) == 1


def test_an_api_error_is_one_line(api: ScriptedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers.append(answer(409, problem(409, "task is SUCCESS; only FAILED or CANCELLED")))
    assert cli.main(["retry", TASK_ID, "--url", "http://x.test"]) == 1
    err = capsys.readouterr().err
    assert err == "taskflow: error: HTTP 409: task is SUCCESS; only FAILED or CANCELLED\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["retry", TASK_ID, "--payload", "[1]"], "--payload"),
        (["tasks", "retry", "--status", "PENDING"], "--status"),
        (["tasks", "retry", "--limit", "many"], "--limit"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("taskflow ")
    assert said in line
    assert api.requests == []


def test_the_url_comes_from_taskflow_api_url(
    api: ScriptedApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_API_URL", "http://from-env.test:7000")
    api.answers.append(answer(200, task_json()))
    assert cli.main(["status", TASK_ID]) == 0
    assert str(api.requests[0].url) == f"http://from-env.test:7000/api/tasks/{TASK_ID}"
