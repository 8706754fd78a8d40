"""Flow control's values: rates, the Registry's options, TASKFLOW_QUEUE_LIMITS, the policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from taskflow import Registry, TaskContext
from taskflow.config import ConfigError, Settings
from taskflow.domain.flow import (
    MAX_KEY_VALUE_CHARS,
    FlowLimits,
    FlowPolicy,
    Limit,
    Rate,
    key_value,
    parse_queue_limits,
    parse_rate,
)
from taskflow.domain.model import Task

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "rate", "interval"),
    [
        ("10/s", Rate(10, 1.0), 0.1),
        ("600/m", Rate(600, 60.0), 0.1),
        (" 2 / h ", Rate(2, 3600), 1800),
    ],
)
def test_a_rate_is_starts_per_second_minute_or_hour(text: str, rate: Rate, interval: float) -> None:
    assert parse_rate(text) == rate
    assert rate.interval == pytest.approx(interval)
    assert rate.burst == rate.count


@pytest.mark.parametrize("text", ["10", "10/d", "0/s", "-1/s", "1.5/s", "ten/s", "", "10/s/s"])
def test_a_malformed_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^must .*got"):
        parse_rate(text)


def handler(payload: dict[str, Any], ctx: TaskContext) -> None:
    return None


def test_the_registry_keeps_the_limits_of_types_and_queues() -> None:
    tasks = Registry()
    tasks.task("mail.send", rate_limit="10/s", concurrency=3, concurrency_key="customer_id")(
        handler
    )
    tasks.task("plain")(handler)
    tasks.queue("mail", rate_limit="100/m", concurrency=5)
    policy = tasks.flow_policy({"mail": FlowLimits(concurrency=2), "other": FlowLimits()})
    assert policy.types == {
        "mail.send": FlowLimits(rate=Rate(10, 1.0), concurrency=3, concurrency_key="customer_id")
    }
    assert policy.queues == {"mail": FlowLimits(rate=Rate(100, 60.0), concurrency=2)}


def test_a_registry_without_limits_has_an_empty_policy() -> None:
    tasks = Registry()
    tasks.task("plain")(handler)
    assert not tasks.flow_policy()
    assert not tasks.flow_policy().applies_to(["default"])


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"rate_limit": "10/d"}, "rate_limit"),
        ({"rate_limit": 10}, "rate_limit"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency_key": "customer_id"}, "concurrency_key"),
        ({"concurrency": 2, "concurrency_key": ""}, "concurrency_key"),
    ],
)
def test_a_bad_limit_is_refused_at_registration_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=f"'mail.send': {named}"):
        Registry().task("mail.send", **options)


def test_a_bad_queue_limit_names_the_queue_and_option() -> None:
    with pytest.raises(ValueError, match="queue 'mail': concurrency"):
        Registry().queue("mail", concurrency=-1)
    with pytest.raises(ValueError, match="queue 'no way'"):
        Registry().queue("no way", concurrency=1)


def test_included_registries_keep_their_queue_limits() -> None:
    first, second = Registry(), Registry()
    second.queue("mail", concurrency=1)
    first.include(second)
    assert first.flow_policy().queues == {"mail": FlowLimits(concurrency=1)}
    second.queue("mail", concurrency=2)
    with pytest.raises(ValueError, match="queue 'mail'"):
        first.include(second)


def test_settings_override_queue_limits() -> None:
    settings = Settings.from_env(
        {"TASKFLOW_QUEUE_LIMITS": "mail=rate:10/s, concurrency:3; exports=concurrency:1;"}
    )
    assert settings.queue_limits == {
        "mail": FlowLimits(rate=Rate(10, 1.0), concurrency=3),
        "exports": FlowLimits(concurrency=1),
    }
    assert Settings.from_env({}).queue_limits == {}


@pytest.mark.parametrize(
    "value",
    [
        "mail",
        "mail=",
        "=concurrency:1",
        "mail=speed:3",
        "mail=rate:10/d",
        "mail=concurrency:x",
        "mail=concurrency:0",
        "mail=concurrency:1,concurrency:2",
        "mail box=rate:1/s",
        "mail=rate:1/s;mail=concurrency:2",
    ],
)
def test_a_bad_queue_limit_setting_names_its_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^TASKFLOW_QUEUE_LIMITS: "):
        Settings.from_env({"TASKFLOW_QUEUE_LIMITS": value})
    with pytest.raises(ValueError, match=r"expected|must"):
        parse_queue_limits(value)


def task(type_: str = "mail.send", queue: str = "mail", **payload: Any) -> Task:
    return Task.new(id=uuid.uuid4(), type=type_, payload=payload, queue=queue, now=NOW)


def test_a_task_meets_its_queue_limits_then_its_type_limits() -> None:
    policy = FlowPolicy(
        queues={"mail": FlowLimits(rate=Rate(5, 1.0), concurrency=4)},
        types={"mail.send": FlowLimits(rate=Rate(1, 60.0), concurrency=1, concurrency_key="c")},
    )
    assert policy.limits_for(task(c="acme")) == (
        Limit("rate:q:mail", rate=Rate(5, 1.0)),
        Limit("slots:q:mail", concurrency=4),
        Limit("rate:t:mail.send", rate=Rate(1, 60.0)),
        Limit("slots:k:mail.send:c=acme", concurrency=1),
    )
    assert policy.limits_for(task("other", "default")) == ()
    assert policy.holds_slots(task())
    assert policy.has_slots
    assert policy.applies_to(["default"])  # a limited type may be sent to any queue


def test_a_rate_alone_holds_no_slot() -> None:
    policy = FlowPolicy(queues={"mail": FlowLimits(rate=Rate(5, 1.0))})
    assert not policy.holds_slots(task())
    assert not policy.has_slots
    assert policy.applies_to(["mail", "default"])
    assert not policy.applies_to(["default"])


@pytest.mark.parametrize(
    ("value", "text"),
    [("acme", "acme"), (7, "7"), (7.0, "7"), (None, "null"), (True, "true"), ([1], "[1]")],
)
def test_key_values_name_their_slot_set(value: object, text: str) -> None:
    assert key_value(value) == text


def test_a_long_key_value_is_named_by_its_digest() -> None:
    long = key_value("x" * (MAX_KEY_VALUE_CHARS + 1))
    assert long.startswith("sha256:")
    assert long != key_value("x" * (MAX_KEY_VALUE_CHARS + 2))
