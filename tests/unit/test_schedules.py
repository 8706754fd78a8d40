"""Periodic schedules: their options, their ticks (daylight saving included), catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskflow.config import ConfigError
from taskflow.domain.schedules import (
    TICKS_PER_PASS,
    ScheduleState,
    due_ticks,
    every_tick_after,
    schedule_name_problem,
)
from taskflow.entrypoints import logs
from taskflow.entrypoints.startup import prepare
from taskflow.registry import Registry
from taskflow.schedules import Schedule, every_seconds

PARIS = "Europe/Paris"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _schedule(**options: Any) -> Schedule:
    options.setdefault("name", "nightly-report")
    options.setdefault("type", "reports.build")
    if "every" not in options:
        options.setdefault("cron", "0 2 * * *")
    return Schedule(**options)


def _ticks(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    found, instant = [], start
    for _ in range(count):
        instant = schedule.next_after(instant)
        found.append(instant)
    return found


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "* * * * *", "every": timedelta(minutes=5)}, "cron or every"),
        ({"cron": None}, "cron or every"),
        ({"every": timedelta(milliseconds=500)}, "every"),
        ({"every": 300}, "every"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../etc/passwd"}, "timezone"),
        ({"queue": "bad queue!"}, "queue"),
        ({"priority": 10}, "priority"),
        ({"payload": {"when": datetime.now}}, "payload"),
        ({"catchup": timedelta(seconds=-1)}, "catchup"),
        ({"type": "Not A Type"}, "type"),
        ({"name": "has/slash"}, "schedule name"),
        ({"name": ""}, "schedule name"),
    ],
)
def test_a_bad_option_is_a_value_error_naming_it(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        _schedule(**options)


def test_periodic_registers_a_schedule_once_per_name() -> None:
    tasks = Registry()
    schedule = tasks.periodic(
        "every-5", type="debug.echo", every=timedelta(minutes=5), payload={"a": 1}
    )
    assert tasks.schedules == [schedule]
    assert schedule.payload == {"a": 1}
    with pytest.raises(ValueError, match="registered twice"):
        tasks.periodic("every-5", type="debug.echo", cron="* * * * *")


def test_include_brings_the_schedules_along() -> None:
    mine, theirs = Registry(), Registry()
    theirs.periodic("nightly", type="reports.build", cron="0 2 * * *")
    mine.include(theirs)
    assert [s.name for s in mine.schedules] == ["nightly"]


def test_schedule_names_allow_hyphens_dots_and_colons_but_no_slash() -> None:
    assert schedule_name_problem("reports.nightly-v2:eu") is None
    assert schedule_name_problem("a" * 129) is not None
    assert schedule_name_problem("-leading") is not None


def test_every_is_shown_in_seconds() -> None:
    assert every_seconds(_schedule(every=timedelta(minutes=5))) == 300
    assert every_seconds(_schedule(every=timedelta(seconds=1.5))) == 1.5
    assert every_seconds(_schedule()) is None


# -- ticks --------------------------------------------------------------------------------------


def test_cron_ticks_follow_the_time_zone() -> None:
    schedule = _schedule(cron="0 2 * * *", timezone=PARIS)
    # Summer: Paris is UTC+2, so 02:00 there is 00:00 UTC.
    assert schedule.next_after(T0) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)


def test_a_daily_job_in_the_skipped_hour_runs_once_at_the_jump_on_spring_forward_day() -> None:
    # 2026-03-29: Paris clocks go from 02:00 to 03:00; 02:30 does not exist that day.
    schedule = _schedule(cron="30 2 * * *", timezone=PARIS)
    ticks = _ticks(schedule, datetime(2026, 3, 27, 12, 0, tzinfo=UTC), 3)
    assert ticks == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, the jump: once
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_a_daily_job_in_the_repeated_hour_runs_once_on_fall_back_day() -> None:
    # 2026-10-25: Paris clocks go back from 03:00 to 02:00; 02:30 happens twice.
    schedule = _schedule(cron="30 2 * * *", timezone=PARIS)
    ticks = _ticks(schedule, datetime(2026, 10, 24, 12, 0, tzinfo=UTC), 2)
    assert ticks == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST) only
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]


def test_an_hourly_job_runs_in_each_hour_that_happens() -> None:
    schedule = _schedule(cron="0 * * * *", timezone=PARIS)
    fall = _ticks(schedule, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 3)
    # 02:00 CEST, 02:00 CET, 03:00 CET: an hour apart each, the repeated hour included.
    assert fall == [
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
    ]
    spring = _ticks(schedule, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 3)
    assert spring == [  # 01:00 CET, then 03:00 CEST: the skipped hour has no tick
        datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 0, tzinfo=UTC),
    ]


def test_interval_ticks_count_from_the_epoch() -> None:
    schedule = _schedule(every=timedelta(minutes=5))
    assert schedule.next_after(datetime(2026, 6, 1, 12, 3, 10, tzinfo=UTC)) == datetime(
        2026, 6, 1, 12, 5, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2026, 6, 1, 12, 5, tzinfo=UTC)) == datetime(
        2026, 6, 1, 12, 10, tzinfo=UTC
    )


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
steps = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3))


@given(instant=instants, step=steps)
def test_the_next_interval_tick_is_the_first_multiple_after(
    instant: datetime, step: timedelta
) -> None:
    tick = every_tick_after(instant, step)
    assert instant < tick <= instant + step
    assert (tick - datetime(1970, 1, 1, tzinfo=UTC)) % step == timedelta(0)


@given(instant=instants)
def test_cron_ticks_are_strictly_later_and_on_the_minute(instant: datetime) -> None:
    schedule = _schedule(cron="*/7 3-5 * * *", timezone=PARIS)
    tick = schedule.next_after(instant)
    assert tick > instant
    assert tick.second == 0
    assert tick.microsecond == 0
    assert tick - instant <= timedelta(days=1, hours=2)


# -- which ticks are due ------------------------------------------------------------------------

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def _every_minute(instant: datetime) -> datetime:
    return every_tick_after(instant, MINUTE)


def test_the_ticks_since_the_last_one_are_due_oldest_first() -> None:
    state = ScheduleState("s", False, since=T0 - HOUR, last_tick_at=T0 - 3 * MINUTE)
    ticks = due_ticks(_every_minute, state, now=T0 + timedelta(seconds=5), catchup=HOUR)
    assert ticks.due == [T0 - 2 * MINUTE, T0 - MINUTE, T0]
    assert ticks.skipped is None
    assert ticks.next_at == T0 + MINUTE


def test_a_new_schedule_starts_with_the_first_tick_after_it_was_seen() -> None:
    state = ScheduleState("s", False, since=T0 - timedelta(seconds=90))
    ticks = due_ticks(_every_minute, state, now=T0, catchup=HOUR)
    assert ticks.due == [T0 - MINUTE, T0]


def test_ticks_older_than_the_catch_up_window_are_skipped_and_reported() -> None:
    state = ScheduleState("s", False, since=T0 - 10 * HOUR, last_tick_at=T0 - 3 * HOUR)
    ticks = due_ticks(_every_minute, state, now=T0, catchup=5 * MINUTE)
    assert ticks.due == [T0 - 5 * MINUTE + i * MINUTE for i in range(6)]  # the window's edge too
    assert ticks.skipped == (T0 - 3 * HOUR + MINUTE, T0 - 5 * MINUTE)


def test_a_zero_catch_up_window_enqueues_only_a_tick_due_right_now() -> None:
    state = ScheduleState("s", False, since=T0 - HOUR, last_tick_at=T0 - 30 * MINUTE)
    assert due_ticks(_every_minute, state, now=T0, catchup=timedelta(0)).due == [T0]
    late = due_ticks(_every_minute, state, now=T0 + timedelta(seconds=1), catchup=timedelta(0))
    assert late.due == []
    assert late.next_at == T0 + MINUTE


def test_a_paused_schedule_has_nothing_due() -> None:
    state = ScheduleState("s", True, since=T0 - HOUR, last_tick_at=T0 - 3 * MINUTE)
    ticks = due_ticks(_every_minute, state, now=T0, catchup=HOUR)
    assert ticks.due == []
    assert ticks.skipped is None


def test_one_pass_enqueues_a_bounded_number_of_ticks() -> None:
    every_second = timedelta(seconds=1)
    state = ScheduleState("s", False, since=T0 - HOUR)
    ticks = due_ticks(lambda i: every_tick_after(i, every_second), state, now=T0, catchup=HOUR)
    assert len(ticks.due) == TICKS_PER_PASS
    assert ticks.next_at == ticks.due[-1] + every_second  # the next pass goes on from there


@given(
    last=st.integers(min_value=-600, max_value=0),
    since=st.integers(min_value=-600, max_value=0),
    catchup=st.integers(min_value=0, max_value=600),
    step=st.integers(min_value=1, max_value=120),
)
def test_due_ticks_are_after_the_last_within_the_window_in_order_and_none_left_out(
    last: int, since: int, catchup: int, step: int
) -> None:
    interval = timedelta(seconds=step)

    def next_after(instant: datetime) -> datetime:
        return every_tick_after(instant, interval)

    state = ScheduleState(
        "s", False, since=T0 + timedelta(seconds=since), last_tick_at=T0 + timedelta(seconds=last)
    )
    window = T0 - timedelta(seconds=catchup)
    ticks = due_ticks(next_after, state, now=T0, catchup=timedelta(seconds=catchup))
    expected, tick = [], next_after(state.after)
    while tick <= T0:
        if tick >= window:
            expected.append(tick)
        tick = next_after(tick)
    assert ticks.due == expected[:TICKS_PER_PASS]
    assert (ticks.skipped is not None) == (next_after(state.after) < window)
    assert ticks.next_at > T0 or len(expected) > TICKS_PER_PASS


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="payload must be a JSON object"):
        Registry().periodic("x", type="a.b", cron="* * * * *", payload=[1, 2])  # type: ignore[arg-type]


def test_a_process_does_not_start_with_a_schedule_of_an_unknown_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ghostly_tasks.py").write_text(
        "from taskflow import Registry\n"
        "tasks = Registry()\n"
        "tasks.periodic('ghost', type='nobody.home', cron='0 2 * * *')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(logs, "configure", lambda level, fmt: None)  # keep pytest's logging
    environ = {"TASKFLOW_TASKS": "ghostly_tasks:tasks"}
    with pytest.raises(ConfigError, match=r"TASKFLOW_TASKS: schedule 'ghost': unknown task type"):
        prepare("server", environ)
