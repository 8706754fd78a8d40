"""Each `taskflow` command that talks to the API, against a scripted API: its exit status
(docs/api.md, "Exit status") and its one line on stderr for every way it can fail."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest

from taskflow.client import Client
from taskflow.entrypoints import cli, cli_api, cli_task
from tests.unit.client_fakes import TASK_ID, FakeTime, ScriptedApi, answer, problem, task_json

URL = "http://api.test"
# Every command that talks to the API (queues and workers: tests/unit/test_cli_fleet.py).
TALKING = [
    ["tasks", "show", TASK_ID],
    ["tasks", "cancel", TASK_ID],
    ["tasks", "retry", TASK_ID],
    ["tasks", "retry", "--status", "FAILED"],
    ["tasks", "list"],
    ["tasks", "stats"],
    ["status", TASK_ID],
    ["cancel", TASK_ID],
    ["retry", TASK_ID],
    ["schedules"],
    ["submit", "debug.echo"],
    ["submit", "debug.echo", "--wait"],
]
BY_ID = [c for c in TALKING if TASK_ID in c]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ScriptedApi:
    scripted = ScriptedApi([])
    client = functools.partial(Client, transport=scripted.transport, sleep=FakeTime().sleep)
    monkeypatch.setattr(cli_api, "Client", client)
    return scripted


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("taskflow"), lines
    return lines[0]


def usage_mistake(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    return one_line(capsys)


@pytest.mark.parametrize("command", TALKING, ids=" ".join)
def test_an_unreachable_api_is_exit_1_and_one_line(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    api.answers.append(httpx.ConnectError("connection refused"))
    assert cli.main([*command, "--url", URL]) == 1
    line = one_line(capsys)
    assert line.startswith(f"taskflow: error: cannot reach the API at {URL}: ")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("command", TALKING, ids=" ".join)
def test_an_answer_that_is_not_taskflows_is_exit_1_and_one_line(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    api.answers.append(httpx.Response(200, text="<html>a proxy's page</html>"))
    assert cli.main([*command, "--url", URL]) == 1
    assert f"the answer from {URL} is not taskflow's" in one_line(capsys)


@pytest.mark.parametrize("command", BY_ID, ids=" ".join)
def test_an_unknown_id_is_exit_1_with_the_apis_404(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    api.answers.append(answer(404, problem(404, f"no task has id {TASK_ID}")))
    assert cli.main([*command, "--url", URL]) == 1
    assert one_line(capsys) == f"taskflow: error: HTTP 404: no task has id {TASK_ID}"


@pytest.mark.parametrize("command", BY_ID, ids=" ".join)
def test_a_malformed_id_is_a_usage_mistake_sent_nowhere(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    args = [("12-nope" if part == TASK_ID else part) for part in command]
    line = usage_mistake(capsys, [*args, "--url", URL])
    assert "a task id is a UUID, got '12-nope'" in line
    assert api.requests == []


@pytest.mark.parametrize("command", TALKING, ids=" ".join)
def test_a_bad_url_is_a_usage_mistake(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert "--url" in usage_mistake(capsys, [*command, "--url", "api.test:8000"])
    assert api.requests == []


@pytest.mark.parametrize("command", TALKING, ids=" ".join)
def test_a_bad_taskflow_api_url_is_exit_2_naming_it(
    api: ScriptedApi,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    monkeypatch.setenv("TASKFLOW_API_URL", "ftp://files.test")
    assert cli.main(command) == 2
    assert "TASKFLOW_API_URL must be an http:// or https:// URL" in one_line(capsys)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["tasks", "list", "--limit", "many"], "--limit"),
        (["tasks", "show"], "id"),
        (["tasks", "cancel", TASK_ID, "--force"], "--force"),
        (["tasks", "frobnicate"], "frobnicate"),
        (["tasks", "stats", "--json=yes"], "--json"),
        (["tasks", "retry", "--status", "PENDING"], "--status"),
        (["status", TASK_ID, "--all"], "--all"),
        (["cancel"], "id"),
        (["retry", TASK_ID, "--payload", "1"], "--payload"),
        (["schedules", "--jsn"], "--jsn"),
        (["queues", "--limit=3"], "--limit=3"),
        (["submit", "debug.echo", "--wait", "--timeout", "0"], "--timeout"),
        (["submit", "debug.echo", "--payload", "[]"], "--payload"),
    ],
)
def test_a_bad_option_is_exit_2_and_one_line(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    assert said in usage_mistake(capsys, args)
    assert api.requests == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["tasks", "retry", TASK_ID, "--queue", "mail"], "not both (--queue)"),
        (["tasks", "retry", "--payload", "{}"], "--payload needs the id"),
    ],
)
def test_tasks_retry_takes_an_id_or_filters(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    assert cli.main([*args, "--url", URL]) == 2
    assert said in one_line(capsys)
    assert api.requests == []


def test_an_api_error_is_exit_1(api: ScriptedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers.append(answer(409, problem(409, "task is SUCCESS; it cannot be cancelled")))
    assert cli.main(["tasks", "cancel", TASK_ID, "--url", URL]) == 1
    assert one_line(capsys).endswith("HTTP 409: task is SUCCESS; it cannot be cancelled")


def history_json(outcome: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    attempt = {
        "attempt": 1,
        "worker_id": "vm:1:abc",
        "started_at": "2026-11-30T20:06:52.000000Z",
        "finished_at": "2026-11-30T20:06:53.000000Z",
        "outcome": outcome,
        "error": None if error is None else {**error, "traceback": None},
    }
    return {"items": [attempt], "changes": []}


@pytest.mark.parametrize(
    ("final", "code"),
    [
        (task_json("SUCCESS", attempts=1, result={"ok": True}), 0),
        (task_json("FAILED", attempts=1, error={"type": "Fail", "message": "no"}), 3),
        (task_json("CANCELLED", attempts=1), 4),
    ],
    ids=["SUCCESS", "FAILED", "CANCELLED"],
)
def test_submit_wait_exits_with_how_the_task_ended(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], final: dict[str, Any], code: int
) -> None:
    running = task_json("PROCESSING", attempts=1, progress={"fraction": 0.25, "message": "a"})
    history = history_json(final["status"], final["error"])
    api.answers.extend(
        [answer(202, task_json()), answer(200, running), answer(200, final), answer(200, history)]
    )
    assert cli.main(["submit", "debug.echo", "--wait", "--url", URL]) == code
    out, err = capsys.readouterr()
    assert json.loads(out) == final
    ended = final["status"] + ("" if final["error"] is None else ": Fail: no")
    assert err.splitlines()[:4] == [
        f"task {TASK_ID} PENDING on queue default",
        "PROCESSING: attempt 1",
        "progress 25% a",
        f"attempt 1 {ended}",
    ]
    assert err.splitlines()[-1].startswith(f"{final['status']} after 1 attempt")
    assert [r.url.path for r in api.requests][-1] == f"/api/tasks/{TASK_ID}/attempts"


def test_submit_wait_exits_5_when_the_task_outlives_the_timeout(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.extend([answer(202, task_json()), answer(200, task_json())])
    assert cli.main(["submit", "debug.echo", "--wait", "--timeout", "0.2", "--url", URL]) == 5
    out, err = capsys.readouterr()
    assert json.loads(out)["id"] == TASK_ID  # the id, to follow it later
    assert err.splitlines()[-1].startswith("still PENDING after 0.2s; it goes on")


def test_the_api_lost_while_waiting_is_exit_1_naming_the_task(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.extend([answer(202, task_json()), httpx.ConnectError("refused")])
    assert cli.main(["submit", "debug.echo", "--wait", "--url", URL]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"taskflow: error: cannot reach the API at {URL}")
    assert err[-1].endswith(f"while waiting for task {TASK_ID}")


def test_tasks_show_prints_the_fields_attempts_and_last_traceback(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    error = {"type": "OSError", "message": "disk [full]"}
    failed = task_json("FAILED", attempts=1, max_retries=0, error=error)
    attempt = {
        "attempt": 1,
        "worker_id": "vm:1:abc",
        "started_at": "2026-11-30T20:06:52.000000Z",
        "finished_at": "2026-11-30T20:06:53.000000Z",
        "outcome": "FAILED",
        "error": {**error, "traceback": "Traceback (most recent call last):\nOSError: disk"},
    }
    api.answers.extend([answer(200, failed), answer(200, {"items": [attempt], "changes": []})])
    assert cli.main(["tasks", "show", TASK_ID, "--url", URL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", TASK_ID]
    assert ["status", "FAILED"] in [line.split() for line in lines]
    assert "error             OSError: disk [full]" in lines
    header = [line.split() for line in lines].index([c.upper() for c in cli_task.ATTEMPTS])
    assert lines[header + 1].split()[:3] == ["1", "FAILED", "vm:1:abc"]
    assert lines[-3:] == [
        "traceback of attempt 1:",
        "Traceback (most recent call last):",
        "OSError: disk",
    ]


def test_tasks_show_clips_a_long_payload(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.extend(
        [answer(200, task_json(payload={"text": "x" * 2000})), answer(200, {"items": []})]
    )
    assert cli.main(["tasks", "show", TASK_ID, "--url", URL]) == 0
    fields = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert fields["payload"] == '{"text":"' + "x" * 491 + "… (--json shows all)"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["tasks", "cancel", TASK_ID], f"cancelled {TASK_ID}"),
        (["tasks", "retry", TASK_ID], f"retried {TASK_ID}: PENDING on queue default"),
    ],
)
def test_tasks_cancel_and_retry_say_what_they_did(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    status = "CANCELLED" if "cancel" in args else "PENDING"
    api.answers.append(answer(200, task_json(status)))
    assert cli.main([*args, "--url", URL]) == 0
    assert capsys.readouterr().out == said + "\n"


def test_cancelling_a_running_task_says_its_worker_stops_it(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append(answer(202, task_json("PROCESSING", cancel_requested=True)))
    assert cli.main(["tasks", "cancel", TASK_ID, "--url", URL]) == 0
    assert capsys.readouterr().out == (
        f"cancel requested: {TASK_ID} is PROCESSING; its worker is stopping it\n"
    )


@pytest.mark.parametrize(
    "args", [["status", TASK_ID], ["tasks", "show", TASK_ID, "--json"]], ids=" ".join
)
def test_status_is_tasks_show_json(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    api.answers.append(answer(200, task_json("SUCCESS")))
    assert cli.main([*args, "--url", URL]) == 0
    assert json.loads(capsys.readouterr().out) == task_json("SUCCESS")
    assert [r.url.path for r in api.requests] == [f"/api/tasks/{TASK_ID}"]
