"""`taskflow submit --wait` when the task's history lags its status: a task read as final may
be read before its last attempt's ending is in its history (cli_submit.FINAL_HISTORY_READS);
and when it is ahead: an attempt may end between a poll and the history read after it."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from taskflow.client import Client
from taskflow.entrypoints import cli, cli_api, cli_submit
from tests.unit.client_fakes import TASK_ID, FakeTime, ScriptedApi, answer, attempt_json, task_json

URL = "http://api.test"
FIRST = {"type": "Fail", "message": "first"}
LAST = {"type": "Fail", "message": "no"}
FAILED_TWICE = task_json("FAILED", attempts=2, retry_count=1, max_retries=1, error=LAST)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, time: FakeTime) -> ScriptedApi:
    scripted = ScriptedApi([])
    client = functools.partial(Client, transport=scripted.transport, sleep=time.sleep)
    monkeypatch.setattr(cli_api, "Client", client)
    follow = functools.partial(cli_submit.follow, clock=time.clock, sleep=time.sleep)
    monkeypatch.setattr(cli_submit, "follow", follow)
    return scripted


def history(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items), "changes": []}


# The retry and the second attempt's failure both happen between two polls; the first history
# read after the final poll still has the second attempt open.
LAGGING = history(attempt_json(1, "RETRY", FIRST), attempt_json(2, None))
CAUGHT_UP = history(attempt_json(1, "RETRY", FIRST), attempt_json(2, "FAILED", LAST))


def submit_and_wait(api: ScriptedApi, *histories: dict[str, Any]) -> int:
    running = task_json("PROCESSING", attempts=1, max_retries=1)
    api.answers.extend(
        [
            answer(202, task_json(max_retries=1)),
            answer(200, running),
            answer(200, FAILED_TWICE),
            *(answer(200, h) for h in histories),
        ]
    )
    return cli.main(["submit", "debug.echo", "--wait", "--url", URL])


def history_reads(api: ScriptedApi) -> int:
    return sum(r.url.path == f"/api/tasks/{TASK_ID}/attempts" for r in api.requests)


def test_the_last_attempts_ending_is_shown_when_the_history_lags_the_final_task_by_one_read(
    api: ScriptedApi, time: FakeTime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit_and_wait(api, LAGGING, CAUGHT_UP) == cli_api.Exit.TASK_FAILED
    assert capsys.readouterr().err.splitlines() == [
        f"task {TASK_ID} PENDING on queue default",
        "PROCESSING: attempt 1",
        "attempt 1 RETRY: Fail: first",
        "attempt 2 FAILED: Fail: no",
        "FAILED after 2 attempts: Fail: no",
    ]
    assert history_reads(api) == 2
    assert time.slept == pytest.approx([0.1, 0.15])  # the two polls; no pause before the re-read


def test_a_history_that_never_catches_up_is_read_a_bounded_number_of_times(
    api: ScriptedApi, time: FakeTime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert submit_and_wait(api, LAGGING) == cli_api.Exit.TASK_FAILED
    err = capsys.readouterr().err.splitlines()
    assert "attempt 1 RETRY: Fail: first" in err
    assert not [line for line in err if line.startswith("attempt 2")]
    assert err[-1] == "FAILED after 2 attempts: Fail: no"
    assert history_reads(api) == 1 + cli_submit.FINAL_HISTORY_READS
    pauses = time.slept[2:]  # after the two polls: one pause between two re-reads
    assert pauses == [cli_submit.FIRST_POLL_SECONDS] * (cli_submit.FINAL_HISTORY_READS - 1)


def test_an_attempt_that_ends_between_the_poll_and_the_history_read_is_shown_after_it(
    api: ScriptedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """The poll reads the second attempt running; the history, read just after, has it failed
    already: its ending is shown after "PROCESSING: attempt 2", when a poll has read it ended,
    never before."""
    second = task_json("PROCESSING", attempts=2, retry_count=1, max_retries=1, error=FIRST)
    api.answers.extend(
        [
            answer(202, task_json(max_retries=1)),
            answer(200, second),
            answer(200, CAUGHT_UP),
            answer(200, FAILED_TWICE),
            answer(200, CAUGHT_UP),
        ]
    )
    assert cli.main(["submit", "debug.echo", "--wait", "--url", URL]) == cli_api.Exit.TASK_FAILED
    assert capsys.readouterr().err.splitlines() == [
        f"task {TASK_ID} PENDING on queue default",
        "attempt 1 RETRY: Fail: first",
        "PROCESSING: attempt 2",
        "attempt 2 FAILED: Fail: no",
        "FAILED after 2 attempts: Fail: no",
    ]
