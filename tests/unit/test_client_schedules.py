"""The clients' schedule calls against a scripted API, on ``Client`` and ``AsyncClient``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskflow.client import NotFound
from tests.unit.client_fakes import FakeTime, ScriptedApi, answer, problem
from tests.unit.test_client import Driven

SCHEDULE = {
    "name": "nightly-report",
    "type": "reports.build",
    "cron": "0 2 * * *",
    "every": None,
    "timezone": "Europe/Paris",
    "queue": "default",
    "paused": False,
    "last_run_at": None,
    "next_run_at": "2026-12-02T01:00:00.000000Z",
}


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _driven(kind: str, *answers: object) -> tuple[Driven, ScriptedApi]:
    api = ScriptedApi(list(answers))
    return Driven(kind, api, FakeTime()), api


def test_schedules_lists_them_decoded(kind: str) -> None:
    tf, api = _driven(kind, answer(200, {"items": [SCHEDULE]}))
    [schedule] = tf.schedules()
    assert (api.requests[0].method, api.requests[0].url.path) == ("GET", "/api/schedules")
    assert (schedule.name, schedule.cron, schedule.every) == ("nightly-report", "0 2 * * *", None)
    assert schedule.next_run_at == datetime(2026, 12, 2, 1, tzinfo=UTC)
    assert schedule.last_run_at is None


def test_pause_and_resume_post_to_the_schedule_s_own_path(kind: str) -> None:
    paused = {**SCHEDULE, "paused": True, "next_run_at": None}
    tf, api = _driven(kind, answer(200, paused), answer(200, SCHEDULE))
    assert tf.pause_schedule("nightly-report").paused is True
    assert tf.resume_schedule("nightly-report").paused is False
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", "/api/schedules/nightly-report/pause"),
        ("POST", "/api/schedules/nightly-report/resume"),
    ]


def test_an_unknown_schedule_is_not_found(kind: str) -> None:
    tf, _ = _driven(kind, answer(404, problem(404, "no schedule is named 'x'")))
    with pytest.raises(NotFound):
        tf.pause_schedule("x")
