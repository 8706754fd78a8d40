"""A task type's options are checked when it is registered, against the domain's limits."""

from __future__ import annotations

from typing import Any

import pytest

from taskflow.registry import Registry


async def _handler(payload: dict[str, Any], ctx: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"priority": 10}, "priority must lie in 0-9"),
        ({"max_retries": 26}, "max_retries must lie in 0-25"),
        ({"queue": "no spaces"}, "queue must be"),
        ({"timeout_seconds": 0}, "timeout_seconds must be positive"),
        ({"backoff_base": -1}, "backoff_base must be a positive number"),
        ({"backoff_base": 10, "backoff_max": 5}, "backoff_max must be at least backoff_base"),
    ],
)
def test_an_option_outside_the_limits_is_refused_at_registration(
    options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        Registry().task("ok.name", **options)(_handler)


def test_a_bad_type_name_is_refused_at_registration() -> None:
    with pytest.raises(ValueError, match="type must match"):
        Registry().task("Bad Name")(_handler)


def test_one_backoff_bound_is_kept_as_given_and_the_other_left_to_the_deployment() -> None:
    tasks = Registry()
    tasks.task("ok.name", backoff_base=4.0)(_handler)
    kind = tasks.get("ok.name")
    assert kind is not None
    assert (kind.backoff_base, kind.backoff_max) == (4.0, None)
