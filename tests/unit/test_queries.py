"""The listing's domain values: what a metadata filter matches, pages, and the HTTP cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from taskflow.domain.errors import InvalidQuery
from taskflow.domain.limits import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from taskflow.domain.model import Task
from taskflow.domain.queries import MetadataEquals, Page, Position, checked_limit
from taskflow.entrypoints.http.listing import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("value", "values"),
    [
        ("42", ("42", 42)),
        ("4.5", ("4.5", 4.5)),
        ("true", ("true", True)),
        ("null", ("null", None)),
        ("abc", ("abc",)),
        ("NaN", ("NaN",)),
        ("1e999", ("1e999",)),
        (str(2**63), (str(2**63),)),
        ('{"a": 1}', ('{"a": 1}',)),
    ],
)
def test_a_metadata_filter_matches_the_text_and_the_scalar_it_spells(
    value: str, values: tuple[object, ...]
) -> None:
    assert MetadataEquals("k", value).values() == values


def test_a_boolean_is_not_the_number_one() -> None:
    assert not MetadataEquals("k", "1").matches({"k": True})
    assert not MetadataEquals("k", "true").matches({"k": 1})
    assert MetadataEquals("k", "1").matches({"k": 1.0})


def test_page_of_reads_one_more_row_to_know_of_a_next_page() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [Task.new(id=uuid.uuid4(), type="a.b", payload={}, now=now) for _ in range(3)]
    assert Page.of(rows, 2) == Page(rows[:2], Position.of(rows[1]))
    assert Page.of(rows[:2], 2) == Page(rows[:2], None)
    assert Page.of([], 2) == Page([], None)


def test_the_limit_defaults_and_is_bounded() -> None:
    assert checked_limit(None) == LIST_LIMIT_DEFAULT
    assert checked_limit(LIST_LIMIT_MAX) == LIST_LIMIT_MAX
    for wrong in (0, LIST_LIMIT_MAX + 1):
        with pytest.raises(InvalidQuery) as refused:
            checked_limit(wrong)
        assert refused.value.field == "limit"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_a_cursor_round_trips_its_position(moment: datetime) -> None:
    position = Position(moment, uuid.uuid4())
    cursor = encode_cursor(position)
    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor) == position
