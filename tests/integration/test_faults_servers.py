"""Issue 3, servers: stop, hang, kill and wipe PostgreSQL and Redis under real taskflow processes.

The servers are throwaway ones on free ports (tests/integration/servers.py); the shared ones are
never touched. Tests that fault Redis keep their tasks in the shared PostgreSQL.

Recovering ids that Redis never got or lost (submitted while it was down, wiped by a restart
or a FLUSHALL) is the reconciler's job: those tests fail until it exists.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Databases
from tests.integration.conftest import FAULT_LEASE_SECONDS as LEASE_SECONDS
from tests.integration.conftest import FAULT_SETTINGS as FAULTS
from tests.integration.conftest import Stack, StackFactory, migrated_stacks
from tests.integration.processes import Process, wait_for
from tests.integration.servers import PostgresServer, RedisServer

RECOVERY_SECONDS = 30.0  # how long lost ids may take to be dispatched again (sweeps are 0.5 s)

StartStack = Callable[..., Stack]


@pytest.fixture
def redis_stack(
    pg_database_factory: Databases, redis_server: RedisServer, tmp_path: Path
) -> Iterator[StartStack]:
    """Starts an API and workers on the shared PostgreSQL and this test's own Redis."""
    factory = migrated_stacks(pg_database_factory, tmp_path)
    yield _starter(factory, redis_server)
    redis_server.resume()  # a hung Redis would hold up the workers' shutdown
    factory.close()


@pytest.fixture
def pg_stack(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[StartStack]:
    """Starts an API and workers on this module's own PostgreSQL and this test's own Redis."""
    postgres_server.start()
    factory = StackFactory(postgres_server.create_database, tmp_path)
    yield _starter(factory, redis_server)
    postgres_server.start()  # the test may have left it stopped
    factory.close()


def _starter(factory: StackFactory, redis_server: RedisServer) -> StartStack:
    def start(*worker_args: str, workers: int = 2) -> Stack:
        stack = factory(**FAULTS, TASKFLOW_REDIS_URL=redis_server.url)
        for _ in range(workers):  # starting beside the API, which is waited for
            stack.start_worker(*worker_args)
        stack.start_api()
        for process in stack.processes:
            if process.args[0] == "worker":
                wait_logged(stack, process, "worker started", since=0)
        return stack

    return start


def echo(n: int, **options: Any) -> dict[str, Any]:
    return {"type": "debug.echo", "payload": {"n": n}, **options}


def assert_all_succeed(stack: Stack, ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    done = stack.wait_status(ids, timeout=timeout)
    failed = [t for t in done if t["status"] != "SUCCESS"]
    assert failed == [], f"{len(failed)} did not succeed, e.g. {failed[:3]}\n{stack.dump_logs()}"
    return done


def assert_alive(stack: Stack) -> None:
    dead = [p.log_path.name for p in stack.processes if not p.alive()]
    assert dead == [], f"exited: {dead}\n{stack.dump_logs()}"


def workers(stack: Stack) -> list[Process]:
    return [p for p in stack.processes if p.args[0] == "worker"]


def wait_logged(stack: Stack, process: Process, needle: str, *, since: int) -> None:
    """Wait until ``needle`` appears in the process's output after its first ``since`` chars."""
    try:
        wait_for(lambda: needle in process.output()[since:], timeout=60, what=repr(needle))
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None


class SubmitLoad(threading.Thread):
    """Submits tasks one after another until stopped (bounded in count and time).

    Records every accepted id, every status seen, and every answer that breaks the contract:
    anything but 202, or a 503 without Retry-After.
    """

    def __init__(self, base_url: str, *, limit: int = 2000, seconds: float = 90) -> None:
        super().__init__(daemon=True)
        self.accepted: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []
        self._base_url = base_url
        self._limit = limit
        self._deadline = time.monotonic() + seconds
        self._stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=30) as client:
            for n in range(self._limit):
                if self._stopped.is_set() or time.monotonic() > self._deadline:
                    return
                # Every other task sleeps, so that some are running when a fault strikes.
                body = echo(n) if n % 2 else {"type": "fault.sleep", "payload": {"seconds": 0.3}}
                self._submit(client, body)
                self._stopped.wait(0.02)  # pacing, so the workers keep up

    def _submit(self, client: httpx.Client, body: dict[str, Any]) -> None:
        try:
            response = client.post("/api/tasks", json=body)
        except httpx.HTTPError as exc:
            self.problems.append(f"no answer: {exc!r}")
            return
        self.statuses[response.status_code] += 1
        if response.status_code == 202:
            self.accepted.append(response.json()["id"])
        elif response.status_code != 503 or "retry-after" not in response.headers:
            self.problems.append(f"{response.status_code} {response.headers} {response.text[:300]}")

    def stop(self) -> None:
        self._stopped.set()
        self.join(60)


def test_postgres_stopped_under_load_answers_503_and_loses_no_accepted_task(
    pg_stack: StartStack, postgres_server: PostgresServer
) -> None:
    stack = pg_stack()
    [api] = [p for p in stack.processes if p.args[0] == "api"]
    load = SubmitLoad(stack.base_url)
    load.start()
    try:
        wait_for(lambda: len(load.accepted) >= 30, timeout=60, what="submissions before")
        # Due in mid-outage: workers pop them from Redis but cannot claim them.
        due_in_outage = [stack.submit(echo(n, delay_seconds=1.5))["id"] for n in range(10)]
        logged = {p.pid: len(p.output()) for p in workers(stack)}
        postgres_server.stop()
        stopped = time.monotonic()

        def outage_felt() -> bool:
            # Long enough for leases to lapse, and every worker has run into it.
            return (
                time.monotonic() - stopped > LEASE_SECONDS + 1
                and load.statuses[503] >= 10
                and all('"WARNING"' in p.output()[logged[p.pid] :] for p in workers(stack))
            )

        wait_for(outage_felt, timeout=60, interval=0.1, what="the outage to be felt")
        ready = httpx.get(f"{stack.base_url}/health/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert api.alive(), stack.dump_logs()
        accepted_before = len(load.accepted)
        postgres_server.start()
        wait_for(
            lambda: len(load.accepted) >= accepted_before + 30,
            timeout=60,
            what="submissions accepted again after the restart",
        )
    finally:
        load.stop()
        postgres_server.start()

    assert load.problems == [], f"{load.problems[:5]}\n{stack.dump_logs()}"
    assert_all_succeed(stack, load.accepted + due_in_outage, timeout=60)
    assert_alive(stack)
    assert httpx.get(f"{stack.base_url}/health/ready", timeout=30).status_code == 200


def gated(gate: Path) -> dict[str, Any]:
    """A task that runs until the test creates ``gate``."""
    return {"type": "fault.gate", "payload": {"path": str(gate)}}


def test_redis_hung_by_sigstop_stalls_workers_and_api_only_while_it_lasts(
    redis_stack: StartStack, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = redis_stack()
    gate = tmp_path / "gate"
    running = [stack.submit(gated(gate))["id"]]  # runs all through the pause
    before = running + [stack.submit(echo(n))["id"] for n in range(10)]
    before += [stack.submit(echo(n, delay_seconds=3))["id"] for n in range(5)]
    stack.wait_status(running, {"PROCESSING"}, timeout=30)
    logged = {p.pid: len(p.output()) for p in workers(stack)}

    redis_server.pause()
    try:
        ready = httpx.get(f"{stack.base_url}/health/ready", timeout=30)
        assert (ready.status_code, ready.json()["status"]) == (200, "degraded"), ready.text

        # Hold the pause until every worker's Redis call has timed out, not merely waited.
        def all_timed_out() -> bool:
            return all("claim failed" in p.output()[logged[p.pid] :] for p in workers(stack))

        wait_for(all_timed_out, timeout=60, interval=0.2, what="workers to give up on Redis")
        assert_alive(stack)
    finally:
        redis_server.resume()
    gate.touch()

    after = [stack.submit(echo(n))["id"] for n in range(10)]
    assert_all_succeed(stack, before + after)
    assert_alive(stack)


def test_redis_killed_leaves_workers_alive_backing_off_until_it_returns(
    redis_stack: StartStack, redis_server: RedisServer
) -> None:
    stack = redis_stack()
    assert_all_succeed(stack, [stack.submit(echo(n))["id"] for n in range(10)])
    logged = {p.pid: len(p.output()) for p in workers(stack)}

    redis_server.kill()

    def retry_delays(process: Process) -> list[float]:
        lines = process.output()[logged[process.pid] :].splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [e["retry_in"] for e in found if e["event"] == "claim failed, retrying"]

    def backing_off() -> bool:
        return all(len(retry_delays(p)) >= 4 for p in workers(stack))

    try:
        wait_for(backing_off, timeout=60, interval=0.2, what="workers to back off")
    except AssertionError:
        raise AssertionError(stack.dump_logs()) from None
    assert_alive(stack)
    for process in workers(stack):
        delays = retry_delays(process)
        assert delays == sorted(delays), delays
        assert delays[-1] > delays[0], delays  # it backs off: no tight loop

    redis_server.start()  # empty
    assert_all_succeed(stack, [stack.submit(echo(n))["id"] for n in range(10)])
    assert_alive(stack)


# -- recovery of ids Redis never got or lost: the reconciler (issue 3) --------------------------


def test_tasks_submitted_while_redis_is_down_are_accepted_and_run_once_it_returns(
    redis_stack: StartStack, redis_server: RedisServer
) -> None:
    stack = redis_stack()
    redis_server.kill()
    submitted = [stack.submit(echo(n)) for n in range(20)]  # 202: durable without Redis
    assert {t["status"] for t in submitted} == {"PENDING"}

    redis_server.start()  # empty
    done = assert_all_succeed(stack, [t["id"] for t in submitted], timeout=RECOVERY_SECONDS)
    assert {t["attempts"] for t in done} == {1}
    assert_alive(stack)


def test_redis_restarted_empty_loses_no_queued_delayed_or_backing_off_task(
    redis_stack: StartStack, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = redis_stack("--concurrency", "1", workers=1)
    flaky = stack.submit({"type": "fault.flaky", "payload": {"fail_attempts": 1, "retry_after": 8}})

    def backing_off() -> bool:
        task = stack.task(flaky["id"])
        return task["status"] == "PENDING" and task["retry_count"] == 1

    wait_for(backing_off, timeout=30, what="the flaky task to back off")
    # The only slot is busy, so what is submitted next waits in Redis.
    gate = tmp_path / "gate"
    blocker = stack.submit(gated(gate))
    stack.wait_status([blocker["id"]], {"PROCESSING"}, timeout=30)
    queued = [stack.submit(echo(n))["id"] for n in range(10)]
    delayed = [stack.submit(echo(n, delay_seconds=2))["id"] for n in range(5)]
    client = redis_server.client()
    prefix = stack.env["TASKFLOW_REDIS_PREFIX"]
    assert client.zcard(f"{prefix}:q:default:ready") >= len(queued)
    assert client.zcard(f"{prefix}:q:default:delayed") >= len(delayed) + 1
    client.close()

    redis_server.restart()
    gate.touch()

    ids = [flaky["id"], blocker["id"], *queued, *delayed]
    done = assert_all_succeed(stack, ids, timeout=RECOVERY_SECONDS)
    assert done[0]["attempts"] == 2
    assert {t["attempts"] for t in done[1:]} == {1}
    assert_alive(stack)


def test_flushall_mid_run_loses_no_task(redis_stack: StartStack, redis_server: RedisServer) -> None:
    stack = redis_stack("--concurrency", "2", workers=2)
    body = {"type": "fault.sleep", "payload": {"seconds": 0.2}}
    ids = [stack.submit(body)["id"] for _ in range(60)]
    stack.wait_status(ids[:5], {"SUCCESS"}, timeout=30)

    client = redis_server.client()
    assert client.flushall()
    client.close()

    done = assert_all_succeed(stack, ids, timeout=RECOVERY_SECONDS)
    assert {t["attempts"] for t in done} == {1}
    assert_alive(stack)
