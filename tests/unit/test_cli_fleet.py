"""`taskflow queues` and `taskflow workers` against a scripted API: what they ask and print,
and their errors (the tables themselves: tests/unit/test_cli_output.py)."""

from __future__ import annotations

import functools
import json

import httpx
import pytest

from taskflow.client import Client
from taskflow.entrypoints import cli, cli_api
from tests.unit.client_fakes import FakeTime, ScriptedApi, answer, problem
from tests.unit.test_cli_output import QUEUES

URL = "http://api.test"
WORKERS = {
    "workers": [
        {
            "id": "vm:4242:ab12cd",
            "host": "vm",
            "pid": 4242,
            "version": "0.1.0",
            "queues": ["default"],
            "concurrency": 16,
            "running": [],
            "running_count": 0,
            "started_at": "2026-12-01T10:00:00.000000Z",
            "last_seen_at": "2026-12-01T10:00:05.000000Z",
        }
    ]
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ScriptedApi:
    scripted = ScriptedApi([])
    client = functools.partial(Client, transport=scripted.transport, sleep=FakeTime().sleep)
    monkeypatch.setattr(cli_api, "Client", client)
    return scripted


def test_queues_prints_a_table_of_the_apis_queues(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(200, QUEUES))
    assert cli.main(["queues", "--url", URL]) == 0
    assert [r.url.path for r in api.requests] == ["/api/queues"]
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == ["QUEUE", "default", QUEUES["queues"][1]["name"]]
    assert rows[2][-1] == "paused,unconsumed"


def test_queues_json(api: ScriptedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers.append(answer(200, QUEUES))
    assert cli.main(["queues", "--json", "--url", URL]) == 0
    assert json.loads(capsys.readouterr().out) == QUEUES


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_a_queue(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    queue = {**QUEUES["queues"][0], "paused": action == "pause"}
    api.answers.append(answer(200, queue))
    assert cli.main(["queues", action, "default", "--url", URL]) == 0
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", f"/api/queues/default/{action}")
    ]
    state = "paused" if action == "pause" else "running"
    assert capsys.readouterr().out == f"queue default is {state}\n"


def test_workers_prints_a_table_and_json(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(200, WORKERS))
    assert cli.main(["workers", "--url", URL]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[1][:4] == ["vm:4242:ab12cd", "vm", "4242", "0.1.0"]
    assert cli.main(["workers", "--json", "--url", URL]) == 0
    assert json.loads(capsys.readouterr().out) == WORKERS


@pytest.mark.parametrize(
    "command", [["queues"], ["workers"], ["queues", "pause", "default"]], ids=" ".join
)
def test_an_unreachable_api_is_exit_1_and_one_line(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    api.answers.append(httpx.ConnectError("connection refused"))
    assert cli.main([*command, "--url", URL]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"taskflow: error: cannot reach the API at {URL}")


def test_an_error_of_the_api_is_exit_1_and_its_line(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(500, problem(500, "Internal Server Error")))
    assert cli.main(["queues", "pause", "mail", "--url", URL]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == "taskflow: error: HTTP 500: Internal Server Error"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["workers", "--all"], "--all"),
        (["queues", "pause", "no/such"], "queue must be 1-64 letters"),
        (["queues", "resume"], "name"),
    ],
)
def test_a_bad_option_is_exit_2(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert said in line
    assert api.requests == []
