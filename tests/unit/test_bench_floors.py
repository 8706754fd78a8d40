"""The benchmark's floors: the probes' lines are parsed, a floor is the mean of the runs that
worked, and a probe that is missing or fails only leaves its floor unmeasured."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.floors import (
    DRAIN_PROBE,
    PICKUP_PROBE,
    Floors,
    ProbeFailed,
    parse_drain,
    parse_pickup,
)

DRAIN_LINE = "drain floor: 20000 tasks, 2 procs, batch 100: 12,345 tasks/s (1.62 s)"
PICKUP_LINE = "pickup floor: 500 tasks at 100/s: p50 1.23 ms, p99 4.56 ms, max 7.89 ms"


def test_the_drain_line_gives_tasks_per_second() -> None:
    assert parse_drain(f"warming up\n{DRAIN_LINE}\n") == 12_345.0


def test_the_pickup_line_gives_p50_and_p99() -> None:
    assert parse_pickup(PICKUP_LINE + "\n") == (1.23, 4.56)


def test_the_last_line_counts_when_a_probe_prints_several() -> None:
    earlier = DRAIN_LINE.replace("12,345", "999")
    assert parse_drain(f"{earlier}\n{DRAIN_LINE}") == 12_345.0


@pytest.mark.parametrize("output", ["", "Traceback (most recent call last):", PICKUP_LINE])
def test_output_without_the_line_is_a_failed_probe(output: str) -> None:
    with pytest.raises(ProbeFailed):
        parse_drain(output)


def _probe(directory: Path, name: str, line: str, code: int = 0) -> None:
    (directory / name).write_text(f"import sys\nprint({line!r})\nsys.exit({code})\n")


def _floors(directory: Path) -> Floors:
    return Floors(directory, "postgresql://nowhere/db", "redis://nowhere", 2_000, 100)


async def test_a_floor_is_the_mean_of_its_runs(tmp_path: Path) -> None:
    _probe(tmp_path, DRAIN_PROBE, DRAIN_LINE)
    _probe(tmp_path, PICKUP_PROBE, PICKUP_LINE)
    floors = _floors(tmp_path)
    await floors.measure("before")
    _probe(tmp_path, DRAIN_PROBE, DRAIN_LINE.replace("12,345", "10,000"))
    await floors.measure("after")

    assert floors.floor("floor_drain") == pytest.approx(11_172.5)
    assert floors.floor("floor_pickup_p99") == pytest.approx(4.56)
    assert floors.notes("floor_drain") == (
        "mean of the runs before 12,345 tasks/s, after 10,000 tasks/s"
    )


async def test_a_missing_probe_leaves_only_its_own_floor_unmeasured(tmp_path: Path) -> None:
    _probe(tmp_path, PICKUP_PROBE, PICKUP_LINE)
    floors = _floors(tmp_path)
    await floors.measure("before")

    assert floors.floor("floor_drain") is None
    assert floors.notes("floor_drain").startswith("no run worked: before failed; before: ")
    assert "ProbeFailed" in floors.notes("floor_drain")
    assert floors.floor("floor_pickup_p50") == pytest.approx(1.23)


async def test_a_probe_that_fails_once_keeps_the_run_that_worked(tmp_path: Path) -> None:
    _probe(tmp_path, DRAIN_PROBE, DRAIN_LINE)
    floors = _floors(tmp_path)
    await floors.measure("before")
    _probe(tmp_path, DRAIN_PROBE, "connection refused", code=1)
    await floors.measure("after")

    assert floors.floor("floor_drain") == pytest.approx(12_345.0)
    notes = floors.notes("floor_drain")
    assert "before 12,345 tasks/s, after failed" in notes
    assert "exited with 1" in notes


async def test_the_probes_get_the_servers_and_the_sizes(tmp_path: Path) -> None:
    (tmp_path / DRAIN_PROBE).write_text(
        "import sys\n"
        "assert sys.argv[1:] == ['postgresql://nowhere/db', 'redis://nowhere', '2000', '2', "
        "'100'], sys.argv\n"
        f"print({DRAIN_LINE!r})\n"
    )
    floors = _floors(tmp_path)
    await floors.measure("before")
    assert floors.floor("floor_drain") == pytest.approx(12_345.0), floors.notes("floor_drain")


def test_nothing_measured_says_so(tmp_path: Path) -> None:
    assert _floors(tmp_path).notes("floor_drain") == "not measured"
