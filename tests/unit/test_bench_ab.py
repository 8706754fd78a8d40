"""The A/B benchmarks' arithmetic (benchmarks/ab_submit.py, ab_memory.py): the order of
slices in a pair, the interval around the median of the pairs' ratios, and the reports, and
the options they refuse. Nothing here measures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from benchmarks import ab_memory
from benchmarks.ab_submit import Side, median_interval, report, slice_order
from benchmarks.deploy import Deployment


def test_the_first_side_of_a_pair_alternates() -> None:
    assert [slice_order(pair) for pair in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize(
    ("n", "ranks"),
    [
        # The classical table of order statistics for a 95 % interval around a median.
        (6, (1, 6)),
        (10, (2, 9)),
        (20, (6, 15)),
        (40, (14, 27)),
        (100, (40, 61)),
    ],
)
def test_the_median_interval_is_given_by_the_binomial_order_statistics(
    n: int, ranks: tuple[int, int]
) -> None:
    values = [float(rank) for rank in range(1, n + 1)]
    random.Random(n).shuffle(values)  # the order given does not matter
    assert median_interval(values) == (float(ranks[0]), float(ranks[1]))


def test_too_few_values_for_any_interval_answer_their_range() -> None:
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
    with pytest.raises(ValueError, match="no values"):
        median_interval([])


def test_the_interval_holds_the_true_median_about_as_often_as_it_says() -> None:
    rng = random.Random(7)
    trials, held = 2_000, 0
    for _ in range(trials):
        low, high = median_interval([rng.gauss(1.0, 0.1) for _ in range(20)])
        held += low <= 1.0 <= high
    assert 0.93 <= held / trials <= 0.99  # 95.9 % for n = 20 (the ranks' exact coverage)


def test_the_report_gives_each_pairs_ratio_and_their_median() -> None:
    a = Side("A: before", Deployment.__new__(Deployment), rates=[100.0, 200.0, 100.0])
    b = Side("B: after", Deployment.__new__(Deployment), rates=[90.0, 190.0, 110.0])
    a.cpu_us, b.cpu_us = [10.0, 10.0, 10.0], [11.0, 12.0, 9.0]
    a.pg_us, b.pg_us = [40.0, 40.0, 40.0], [41.0, 41.0, 41.0]
    text = report(a, b)
    assert "ratios: 0.900 0.950 1.100" in text
    assert "throughput B/A per pair: median 0.950, 95 % interval 0.900-1.100" in text
    assert "API CPU B/A per pair: median 1.100" in text


def test_the_in_memory_report_gives_both_ratios() -> None:
    a = ab_memory.Side("A: before", None, False, 1, Path("-"))
    b = ab_memory.Side("B: after", None, True, 2, Path("-"))
    a.rates, a.cpu_us = [100.0, 200.0, 100.0], [10.0, 5.0, 10.0]
    b.rates, b.cpu_us = [110.0, 180.0, 120.0], [9.0, 6.0, 8.0]
    text = ab_memory.report(a, b)
    assert "A: before: 100/s, API CPU 10.0 µs per submission" in text
    assert "B/A throughput: 1.100 (0.900-1.200, 95 %, 3 pairs)" in text
    assert "B/A CPU per submission: 0.900 (0.800-1.200, 95 %, 3 pairs)" in text


@pytest.mark.parametrize("args", [["--pairs", "0"], ["--seconds", "0"]])
def test_the_in_memory_comparison_refuses_a_bad_option(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        ab_memory.main(args)
    assert exited.value.code == 2
    assert "--pairs must be at least 1" in capsys.readouterr().err
