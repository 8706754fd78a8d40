"""The benchmark's verdicts: each figure's ratio to its floor, and whether issue 10's target is
met. Pure arithmetic on given numbers: nothing here measures anything."""

from __future__ import annotations

import pytest
from benchmarks.auth import describe as describe_auth
from benchmarks.bench import Params
from benchmarks.report import Report, Row, render
from benchmarks.targets import FLOOR_OF, TARGETS, judge

FLOORS = {"floor_drain": 9_000.0, "floor_pickup_p50": 2.0, "floor_pickup_p99": 4.0}


@pytest.mark.parametrize(
    ("key", "value", "met"),
    [
        ("drain_2_db", 3_000.0, True),  # exactly 1/3 of the floor
        ("drain_2_db", 2_999.0, False),
        ("submit_single", 1_800.0, True),  # 1/5
        ("submit_single", 1_700.0, False),
        ("submit_batch", 13_500.0, True),  # 1.5 x
        ("submit_batch", 13_000.0, False),
        ("pickup_p50", 2.4, True),  # 1.2 x, lower is better
        ("pickup_p50", 2.5, False),
        ("pickup_p99", 6.0, True),  # 1.5 x
        ("pickup_p99", 6.1, False),
    ],
)
def test_a_figure_is_judged_by_its_ratio_to_its_floor(key: str, value: float, met: bool) -> None:
    verdict = judge(key, value, FLOORS)
    assert verdict.floor == FLOORS[FLOOR_OF[key]]
    assert verdict.ratio == pytest.approx(value / FLOORS[FLOOR_OF[key]])
    assert verdict.met is met


@pytest.mark.parametrize(("value", "met"), [(5.0, True), (5.1, False)])
def test_lateness_is_judged_in_milliseconds_without_a_floor(value: float, met: bool) -> None:
    verdict = judge("lateness_delayed_p50", value, FLOORS)
    assert (verdict.floor, verdict.ratio, verdict.target) == (None, None, "≤ 5 ms")
    assert verdict.met is met
    assert judge("lateness_released_p99", 20.0, {}).met is True


def test_without_its_floor_a_figure_has_no_ratio_and_no_verdict() -> None:
    verdict = judge("drain_2_db", 3_000.0, {"floor_pickup_p50": 2.0})
    assert (verdict.floor, verdict.ratio, verdict.met) == (None, None, None)
    assert verdict.target == TARGETS["drain_2_db"].text


def test_a_failed_or_textual_value_is_not_judged() -> None:
    assert judge("submit_batch", None, FLOORS).ratio is None
    assert judge("submit_batch", "n/a", FLOORS).met is None


def test_a_figure_without_a_target_still_gets_its_ratio() -> None:
    verdict = judge("drain_2_quiet_db", 4_500.0, FLOORS)
    assert (verdict.ratio, verdict.target, verdict.met) == (0.5, None, None)
    assert judge("worker_rss_small", 80.0, FLOORS) == judge("worker_rss_small", 80.0, {})


def _report(*rows: Row) -> Report:
    header = {
        "command": "bench",
        "date": "today",
        "commit": "abc",
        "host": {
            "name": "h",
            "cpus": 2,
            "platform": "p",
            "python": "3",
            "load_average_at_start": [],
        },
        "postgresql": {"address": "pg"},
        "redis": {"address": "r", "prefix": "x"},
        "processes": [],
        "settings": {"TASKFLOW_LOG_LEVEL": "INFO"},
        "settings_changed": {},
        "auth": describe_auth(False),
        "phase_settings": {"drain2_quiet": {"TASKFLOW_LOG_LEVEL": "WARNING"}},
    }
    return Report(header, Params(), list(rows))


def test_the_table_shows_floor_ratio_and_verdict() -> None:
    report = _report(
        Row("floor_drain", "drain floor", "tasks/s", 9_000.0, required=False),
        Row("drain_2_db", "drain, 2 workers", "tasks/s", 2_000.0),
        Row("lateness_delayed_p99", "lateness p99", "ms", 12.0),
    )
    report.judge({"floor_drain": 9_000.0})
    table = render(report)
    assert "| drain, 2 workers | 2,000 | tasks/s | 9,000 | 0.22 | ≥ 1/3 x floor: missed |" in table
    assert "| lateness p99 | 12.00 | ms |  |  | ≤ 20 ms: met |" in table
    assert "(the shipped defaults); phase drain2_quiet only: TASKFLOW_LOG_LEVEL=WARNING" in table


def test_a_floor_that_failed_does_not_fail_the_run() -> None:
    report = _report(
        Row("floor_drain", "drain floor", "tasks/s", error="probe missing", required=False),
        Row("drain_2_db", "drain, 2 workers", "tasks/s", 2_000.0),
    )
    report.judge({})
    assert not report.failed()
    assert report.rows[1].ratio is None
    report.rows[1].error = "stalled"
    assert report.failed()
