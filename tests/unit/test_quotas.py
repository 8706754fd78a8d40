"""Tenant quotas' values: TASKFLOW_TENANT_QUOTAS, the default burst, what a refusal says."""

from __future__ import annotations

import pytest

from taskflow.config import ConfigError, Settings
from taskflow.domain.flow import Rate
from taskflow.domain.quotas import (
    MAX_BURST,
    MAX_UNFINISHED,
    Counted,
    Quota,
    QuotaPolicy,
    batch_problem,
    parse_tenant_quotas,
    refusal,
    retry_after,
)


def test_the_setting_gives_each_tenant_its_quota_and_the_others_the_star_one() -> None:
    policy = parse_tenant_quotas(
        "acme=rate:100/s,unfinished:10000; globex = unfinished:500 ;*=rate:50/s;"
    )
    assert policy.of("acme") == Quota(rate=Rate(100, 1.0), burst=100, unfinished=10000)
    assert policy.of("globex") == Quota(unfinished=500)
    assert policy.of("initech") == Quota(rate=Rate(50, 1.0), burst=50)
    assert policy.of("default") == policy.of("initech")  # the operator's too, unless named


def test_without_a_star_entry_other_tenants_have_no_quota() -> None:
    policy = parse_tenant_quotas("acme=unfinished:3")
    assert policy.of("globex") is None
    assert policy
    assert not QuotaPolicy()
    assert Settings.from_env({}).tenant_quotas == QuotaPolicy()


def test_unlimited_lifts_the_star_quota_from_one_tenant() -> None:
    policy = parse_tenant_quotas("*=unfinished:10;default=unlimited")
    assert policy.of("default") is None
    assert policy.of("acme") == Quota(unfinished=10)
    assert not parse_tenant_quotas("default=unlimited")  # limits nothing: costs nothing


@pytest.mark.parametrize(
    ("rate", "burst"),
    [("100/s", 100), ("1/s", 1), ("600/m", 10), ("90/m", 2), ("30/m", 1), ("1/h", 1)],
)
def test_the_default_burst_is_one_second_of_the_rate(rate: str, burst: int) -> None:
    assert parse_tenant_quotas(f"acme=rate:{rate}").of("acme") == Quota(
        rate=Rate(
            int(rate.split("/", maxsplit=1)[0]), {"s": 1.0, "m": 60.0, "h": 3600.0}[rate[-1]]
        ),
        burst=burst,
    )


def test_a_burst_may_be_given() -> None:
    quota = parse_tenant_quotas("acme=rate:10/s,burst:200").of("acme")
    assert quota == Quota(rate=Rate(10, 1.0), burst=200)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("acme", "expected tenant=rate:N/s,unfinished:N"),
        ("acme=", "expected tenant=rate:N/s,unfinished:N"),
        ("=rate:1/s", "expected tenant=rate:N/s,unfinished:N"),
        ("acme=rate:1/s;acme=unfinished:3", "named twice"),
        ("acme=speed:1/s", "expected rate:N/s, burst:N, unfinished:N or 'unlimited'"),
        ("acme=rate:1/s,rate:2/s", "got 'rate:2/s'"),
        ("acme=rate:ten/s", "must look like N/s, N/m or N/h"),
        ("acme=rate:0/s", "between 1 and"),
        ("acme=burst:5", "burst needs a rate"),
        ("acme=rate:1/s,burst:0", "burst must be a whole number between 1 and"),
        (f"acme=rate:1/s,burst:{MAX_BURST + 1}", "burst must be a whole number"),
        ("acme=unfinished:-1", "unfinished must be a whole number"),
        (f"acme=unfinished:{MAX_UNFINISHED + 1}", "unfinished must be a whole number"),
        ("acme=unfinished:1.5", "unfinished must be a whole number"),
        (f"{'t' * 65}=unfinished:1", "the tenant must be 1 to 64 printable characters"),
        ("acme\x01=unfinished:1", "printable"),
    ],
)
def test_a_malformed_setting_stops_the_process_naming_the_variable(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^TASKFLOW_TENANT_QUOTAS: ") as caught:
        Settings.from_env({"TASKFLOW_TENANT_QUOTAS": value})
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(s) for s in (0.0, 0.001, 1.0, 1.2, 59.9)] == [1, 1, 1, 2, 60]


def test_a_refusal_names_the_quota_that_refused_and_when_to_come_back() -> None:
    quota = Quota(rate=Rate(100, 1.0), burst=100, unfinished=10000)
    by_rate = refusal("acme", quota, 5, Counted(rate_wait=2.3))
    assert by_rate.retry_after == 3
    assert by_rate.message == (
        "tenant 'acme' is over its quota of 100/s (burst 100): 5 tasks refused, nothing "
        "stored; try again in 3 s"
    )
    full = refusal("acme", quota, 1, Counted(full=True))
    assert full.retry_after == 1
    assert "at most 10000 unfinished tasks: 1 task refused" in full.message
    both = refusal("acme", quota, 1, Counted(rate_wait=0.2, full=True))
    assert "100/s (burst 100) and at most 10000 unfinished tasks" in both.message


def test_a_batch_that_can_never_pass_is_named() -> None:
    quota = Quota(rate=Rate(10, 1.0), burst=20, unfinished=15)
    assert batch_problem("acme", quota, 15) is None
    assert batch_problem("acme", quota, 16) == (
        "a batch of 16 tasks can never pass tenant 'acme''s quota "
        "(rate:10/s,burst:20,unfinished:15); send at most 15 at once"
    )
    assert batch_problem("acme", Quota(rate=Rate(10, 1.0), burst=20), 21) is not None
    assert batch_problem("acme", Quota(unfinished=50), 50) is None
