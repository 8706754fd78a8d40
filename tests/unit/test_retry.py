"""Properties of the backoff: d = min(max, base * 2**(n-1)), delay uniform in [d/2, d]."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskflow.domain.retry import RetryPolicy

# A timedelta keeps microseconds, so a delay may sit half a microsecond off the exact value.
RESOLUTION = 1e-6
# Any positive float is at least 2**-1074 and any finite one below 2**1024, so from here on
# base * 2**(n-1) exceeds every max.
ALWAYS_CAPPED = 2100

positive = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
# Bounded so that the delay fits in a timedelta (at most 999,999,999 days).
seconds = st.floats(min_value=1e-6, max_value=1e9)
retries = st.integers(min_value=1, max_value=3000) | st.integers(min_value=1)
unit = st.floats(min_value=0.0, max_value=1.0)


def expected_ceiling(base: float, max_: float, n: int) -> float:
    if n - 1 >= ALWAYS_CAPPED:
        return max_
    return float(min(Fraction(max_), Fraction(base) * 2 ** (n - 1)))


@given(base=positive, max_=positive, n=retries)
def test_ceiling_is_min_of_max_and_doubling_base(base: float, max_: float, n: int) -> None:
    ceiling = RetryPolicy(base=base, max=max_).ceiling(n)

    assert ceiling == expected_ceiling(base, max_, n)
    assert ceiling <= max_


@given(base=seconds, max_=seconds, n=retries, rand=unit)
def test_delay_lies_within_half_ceiling_and_ceiling(
    base: float, max_: float, n: int, rand: float
) -> None:
    d = expected_ceiling(base, max_, n)

    delay = RetryPolicy(base=base, max=max_).delay(n, rand).total_seconds()

    assert d / 2 - RESOLUTION <= delay <= d + RESOLUTION


@given(base=seconds, max_=seconds, n=retries)
def test_delay_spans_the_whole_interval(base: float, max_: float, n: int) -> None:
    policy = RetryPolicy(base=base, max=max_)
    d = expected_ceiling(base, max_, n)

    assert policy.delay(n, 0.0).total_seconds() == pytest.approx(d / 2, abs=RESOLUTION)
    assert policy.delay(n, 1.0).total_seconds() == pytest.approx(d, abs=RESOLUTION)


@given(base=seconds, max_=seconds, n=retries, rands=st.lists(unit, min_size=2, max_size=2))
def test_delay_grows_with_rand(base: float, max_: float, n: int, rands: list[float]) -> None:
    low, high = sorted(rands)
    policy = RetryPolicy(base=base, max=max_)

    assert policy.delay(n, low) <= policy.delay(n, high)


@given(n=st.integers(min_value=10**4, max_value=10**100), rand=unit)
def test_huge_retry_numbers_give_the_max(n: int, rand: float) -> None:
    policy = RetryPolicy(base=1.0, max=300.0)

    assert policy.ceiling(n) == 300.0
    assert 150.0 <= policy.delay(n, rand).total_seconds() <= 300.0


@given(n=st.integers(max_value=0))
def test_retries_are_numbered_from_one(n: int) -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(n, 0.5)


@given(rand=st.floats(max_value=0.0, exclude_max=True) | st.floats(min_value=1.0, exclude_min=True))
def test_rand_outside_the_unit_interval_is_refused(rand: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(1, rand)


def test_nan_rand_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(1, float("nan"))


@given(bad=st.floats(max_value=0.0, allow_nan=False), good=seconds)
def test_non_positive_base_or_max_is_refused(bad: float, good: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base=bad, max=good)
    with pytest.raises(ValueError):
        RetryPolicy(base=good, max=bad)
