"""msgspec's messages become a dotted field path and a sentence that names it."""

from __future__ import annotations

import pytest

from taskflow.validation_errors import describe


@pytest.mark.parametrize(
    ("message", "root", "field", "sentence"),
    [
        ("Object missing required field `type`", "", "type", "type is required"),
        (
            "Object missing required field `email` - at `$.customer`",
            "payload",
            "payload.customer.email",
            "payload.customer.email is required",
        ),
        (
            "Object contains unknown field `x`",
            "tasks[2]",
            "tasks[2].x",
            "tasks[2].x is not a known field",
        ),
        (
            "Expected `float`, got `str` - at `$.seconds`",
            "payload",
            "payload.seconds",
            "payload.seconds must be a number, got a string",
        ),
        (
            "Expected `int | null`, got `str`",
            "priority",
            "priority",
            "priority must be an integer or null, got a string",
        ),
        (
            "Expected `int` <= 9",
            "tasks[1].priority",
            "tasks[1].priority",
            "tasks[1].priority must be at most 9",
        ),
        (
            "Expected `float` > 0",
            "timeout_seconds",
            "timeout_seconds",
            "timeout_seconds must be greater than 0",
        ),
        ("Expected `array` of length >= 1", "tasks", "tasks", "tasks must have at least 1 item"),
        (
            "Expected `str` of length <= 64",
            "queue",
            "queue",
            "queue must have at most 64 characters",
        ),
        (
            "Expected `object`, got `array`",
            "",
            "body",
            "the request body must be an object, got an array",
        ),
        (
            "Expected `int`, got `str` - at `$.items[3]`",
            "payload",
            "payload.items[3]",
            "payload.items[3] must be an integer, got a string",
        ),
        (
            "Invalid RFC3339 encoded datetime",
            "run_at",
            "run_at",
            "run_at must be an RFC 3339 timestamp with a time zone",
        ),
        ("Something `new`", "x", "x", "x is invalid: Something new"),
    ],
)
def test_a_message_becomes_a_field_and_a_sentence(
    message: str, root: str, field: str, sentence: str
) -> None:
    assert describe(message, root=root) == (field, sentence)
