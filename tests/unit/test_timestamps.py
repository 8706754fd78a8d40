"""How the API writes an instant (docs/api.md, "The task"): RFC 3339 in UTC, six fractional
digits and ``Z``, whatever zone the instant was made in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from taskflow.entrypoints.http.schemas import timestamp

ZONES = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)


@given(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(UTC) | ZONES))
def test_an_instant_is_written_in_utc_with_six_fractional_digits(moment: datetime) -> None:
    written = timestamp(moment)
    utc = moment.astimezone(UTC)
    assert written == (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )
    assert datetime.fromisoformat(written) == moment


def test_a_whole_second_keeps_its_zeros() -> None:
    moment = datetime(2026, 12, 2, 5, 0, tzinfo=timezone(timedelta(hours=1)))
    assert timestamp(moment) == "2026-12-02T04:00:00.000000Z"
