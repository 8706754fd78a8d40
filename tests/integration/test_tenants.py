"""Tenants on real processes: keys of two tenants made with `taskflow keys create --tenant`, a
real `taskflow api` and `taskflow worker` on PostgreSQL and Redis (decision 36)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import taskflow
from taskflow.client.errors import ApiError, NotFound
from tests.integration.conftest import StackFactory
from tests.integration.processes import run_cli, wait_for


def _key(env: Mapping[str, str], tenant: str) -> str:
    args = ["keys", "create", "--name", f"{tenant}-ops", "--scopes", "admin", "--tenant", tenant]
    made = run_cli(args, env)
    assert made.returncode == 0, made.stderr
    return dict(line.split(": ", 1) for line in made.stdout.splitlines())["key"]


def test_two_tenants_share_a_deployment_and_never_see_each_others_tasks(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    keys = {tenant: _key(stack.env, tenant) for tenant in ("acme", "globex", "default")}
    stack.start_worker()
    stack.start_api()
    acme = taskflow.Client(stack.base_url, api_key=keys["acme"])
    globex = taskflow.Client(stack.base_url, api_key=keys["globex"])
    operator = taskflow.Client(stack.base_url, api_key=keys["default"])
    with acme, globex, operator:
        mine = acme.submit("debug.echo", {"n": 1}, idempotency_key="invoice-7")
        theirs = globex.submit("debug.echo", {"n": 2}, idempotency_key="invoice-7")
        assert mine.id != theirs.id  # one Idempotency-Key, two tenants: two tasks
        done = wait_for(
            lambda: (t := acme.get(mine.id)).status == "SUCCESS" and t,
            timeout=60,
            what="acme's task to run on the worker",
        )
        assert done.result == {"n": 1}
        for stranger in (globex, operator):
            with pytest.raises(NotFound):
                stranger.get(mine.id)
            with pytest.raises(NotFound):
                stranger.attempts(mine.id)
            with pytest.raises(NotFound):
                stranger.cancel(mine.id)
            assert mine.id not in {t.id for t in stranger.list(limit=100).items}
        assert sum(c.count for c in acme.stats()) == 1
        assert sum(c.count for c in operator.stats()) == 0
        replayed = acme.submit("debug.echo", {"n": 1}, idempotency_key="invoice-7")
        assert replayed.id == mine.id
        with pytest.raises(ApiError) as refused:
            acme.queues()
        assert refused.value.status == 403
        assert operator.queues() is not None
