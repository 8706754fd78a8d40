"""The benchmark keeps working: its smoke run exits 0, reports every measurement, and leaves
no database or Redis key behind. No timed assertions: a number only has to be positive."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from benchmarks.targets import FLOOR_OF

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.integration.processes import base_env

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT.parent / "shared" / "probes"  # the floors' probes, beside the repository
FLOORS = {"floor_drain", "floor_pickup_p50", "floor_pickup_p99"}
LATENESS = {
    f"lateness_{kind}_p{q}" for kind in ("delayed", "retried", "released") for q in (50, 99)
}
MEASUREMENTS = {
    *FLOORS,
    "submit_single",
    "submit_batch",
    "drain_1_wall",
    "drain_1_db",
    "drain_2_wall",
    "drain_2_db",
    "drain_2_quiet_db",
    "pickup_p50",
    "pickup_p99",
    "e2e_p50",
    "e2e_p99",
    *LATENESS,
    "worker_rss_small",
    "worker_rss_large",
    "api_peak_rss",
    "worker_peak_rss",
}
# Compared with a floor, and so given a ratio, in every smoke run.
WITH_RATIO = {"submit_single", "drain_1_db", "drain_2_db", "drain_2_quiet_db", "pickup_p50"}


def _run(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` against the test servers; it must exit 0."""
    server = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    env = base_env(TASKFLOW_DATABASE_URL=f"{server}/taskflow", TASKFLOW_REDIS_URL=REDIS_URL)
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


async def _database_exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


@pytest.mark.timeout(400)
def test_smoke_run_reports_every_measurement_with_a_key_on_every_request(tmp_path: Path) -> None:
    """The whole smoke run with `--auth` (one run: CI's time counts): every phase reports, and
    every client of the benchmark sends the key to an API that checks keys (the closed-loop
    processes, the batch probe, the bulk enqueue, the steady sender and the cancels); each
    API refuses a request without the key before it is measured, or its phase fails. The
    report without `--auth` says so: tests/unit/test_bench_auth.py."""
    out = tmp_path / "bench.json"
    done = _run(
        "benchmarks.run",
        *("--smoke", "--auth", "--floors", str(PROBES), "--out", str(out)),
        timeout=300,
    )
    assert "| measurement | value | unit | floor | ratio | target | notes |" in done.stdout
    assert "(the shipped defaults)" in done.stdout
    assert "- API keys: on (--auth)" in done.stdout
    assert not re.search(r"tf_[\w-]{20}", done.stdout + done.stderr), "the key was printed"

    report = json.loads(out.read_text())
    rows = {row["key"]: row for row in report["measurements"]}
    assert set(rows) >= MEASUREMENTS, sorted(MEASUREMENTS - set(rows))
    for row in rows.values():
        assert row["error"] is None, row
        assert isinstance(row["value"], int | float), row  # the batch endpoint took the key
        assert row["value"] > 0, row
    assert rows["submit_single"]["extra"]["errors"] == "none", rows["submit_single"]  # no 401
    assert rows["submit_batch"]["extra"]["errors"] == "none", rows["submit_batch"]
    for key in WITH_RATIO:
        assert rows[key]["ratio"] > 0, rows[key]
        assert rows[key]["floor"] == rows[FLOOR_OF[key]]["value"], rows[key]
    for key in LATENESS | {"drain_2_db", "pickup_p99"}:
        assert rows[key]["target"], rows[key]
        assert rows[key]["met"] in (True, False), rows[key]  # which one is not for a test
    assert len(rows["floor_drain"]["runs"]) == 2, rows["floor_drain"]  # before and after

    header = report["header"]
    assert header["commit"]
    assert "-m benchmarks.run --smoke --auth --floors" in header["command"]
    assert header["auth"].startswith("on (--auth)")
    _assert_nothing_left(header)


def _assert_nothing_left(header: dict[str, Any]) -> None:
    database, prefix = header["postgresql"]["database"], header["redis"]["prefix"]
    assert database.startswith("taskflow_bench_")
    assert not asyncio.run(_database_exists(database)), "the benchmark's database was not dropped"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert not list(client.scan_iter(match=f"{prefix}:*", count=1000)), "Redis keys left"
    finally:
        client.close()


async def _bench_databases() -> set[str]:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'taskflow_bench_%'"
        )
        return {row[0] for row in rows}
    finally:
        await conn.close()


@pytest.mark.timeout(200)
def test_the_drain_profiler_drains_and_cleans_up() -> None:
    before = asyncio.run(_bench_databases())
    done = _run("benchmarks.profile_drain", "--tasks", "300", "--cprofile", timeout=150)
    assert "300 tasks in" in done.stdout
    assert "CPU per task: this process" in done.stdout
    assert "Ordered by: internal time" in done.stdout  # the cProfile listing
    assert asyncio.run(_bench_databases()) <= before, "the profiler's database was not dropped"


@pytest.mark.timeout(200)
def test_the_rss_soak_reports_each_round_and_cleans_up() -> None:
    before = asyncio.run(_bench_databases())
    done = _run("benchmarks.rss_soak", "--rounds", "2", "--chunk", "500", timeout=150)
    rounds = [line for line in done.stdout.splitlines() if "VmRSS" in line]
    counts = [line.split(":")[0].split()[1] for line in rounds]
    assert counts == ["500", "1,000"]
    assert all(float(line.split()[-2]) > 0 for line in rounds)
    assert asyncio.run(_bench_databases()) <= before, "the soak's database was not dropped"


@pytest.mark.timeout(120)
def test_the_queue_lateness_script_measures_every_id() -> None:
    done = _run("benchmarks.due_lateness", "--ids", "20", "--redis", REDIS_URL, timeout=90)
    assert "20 delayed ids, 1 idle popper(s): lateness after run_at p50" in done.stdout
