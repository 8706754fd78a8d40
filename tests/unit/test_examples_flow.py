"""The examples limit their types as a real deployment would (examples/README.md, "Flow control");
that the limits hold across workers is shown by tests/integration/test_flow_limits.py."""

from __future__ import annotations

from examples.mailer.tasks import tasks as mailer
from examples.reports.tasks import tasks as reports
from examples.uploads.tasks import tasks as uploads
from taskflow.domain.flow import FlowLimits, Rate
from taskflow.registry import Registry


def _flow(registry: Registry, name: str) -> FlowLimits:
    definition = registry.get(name)
    assert definition is not None
    return definition.flow


def test_the_mailer_keeps_to_the_providers_quota() -> None:
    assert _flow(mailer, "mail.send").rate == Rate(10, 1.0)


def test_one_export_per_customer_at_a_time() -> None:
    flow = _flow(reports, "reports.sales_csv")
    assert (flow.concurrency, flow.concurrency_key) == (1, "customer_id")


def test_at_most_four_uploads_compress_at_once() -> None:
    flow = _flow(uploads, "uploads.process")
    assert (flow.concurrency, flow.rate) == (4, None)


def test_the_limits_reach_the_policy_every_worker_enforces() -> None:
    policy = mailer.flow_policy()
    assert policy.types["mail.send"].rate == Rate(10, 1.0)
