"""Two API builds, or one build with and without a key, alternated under one load.

    .venv/bin/python -m benchmarks.ab_submit --a-src /tmp/before/src --b-auth [--pairs 20]

On this shared machine a whole `make bench` run of one build moves by ±20 % from one minute to
the next, more than the few percent a change on the submit path is asked to stay within. This
tool measures what such a bound is about, the single-submit throughput of one API process, with
the drift taken out: two deployments (a database and Redis prefix each, an API process each)
run side by side, and the load of `make bench`'s submit phase (2 client processes x 32
keep-alive connections, one POST each, back to back) goes to one API for a short slice, then to
the other. Each pair of slices gives a ratio B/A; within a pair the order alternates (AB, BA, …)
so that a trend favours neither. The report is the median of those ratios with its
distribution-free 95 % interval (order statistics of the binomial), and each side's median
throughput and API CPU per submission.

``--a-src`` (``--b-src``) runs A's (B's) processes with another build's ``src`` first on
``PYTHONPATH`` (a ``git worktree`` of the commit before a change); without, this build.
``--a-auth`` / ``--b-auth``: that side makes an API key and every request to it sends it.
``--batch N``: the batch phase's load instead (4 connections a client process, N tasks a
request); the figures are then per task.
Between pairs the task tables are emptied (the key kept), as the bench's phases start fresh.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.auth import KEY_TABLE
from benchmarks.bench import Bench, Params
from benchmarks.client import batch_body, single_body
from benchmarks.deploy import Deployment, Proc
from benchmarks.measure import CpuWindow, Store
from benchmarks.phases import submit_load


@dataclass
class Side:
    """One deployment under test and what its slices measured."""

    label: str
    deploy: Deployment
    rates: list[float] = field(default_factory=list)  # 202s a second, one per slice
    cpu_us: list[float] = field(default_factory=list)  # API CPU µs per submission, per slice
    pg_us: list[float] = field(default_factory=list)  # PostgreSQL's CPU µs per submission
    bench: Bench | None = None
    api: Proc | None = None


def slice_order(pair: int) -> tuple[int, int]:
    """Which side goes first in pair ``pair``: A then B, then B then A, and so on."""
    return (0, 1) if pair % 2 == 0 else (1, 0)


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values``: the k-th smallest and k-th
    largest, k the largest rank for which the binomial tails stay within 1 - ``confidence``.
    With fewer than six values no such k exists: the whole range is answered."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")
    tail = (1 - confidence) / 2
    k = 0  # ranks counted from 1; 0: none qualifies
    for rank in range(1, n // 2 + 1):
        # The interval [rank-th smallest, rank-th largest] misses the median when fewer than
        # ``rank`` values fall on one side of it: P(Binomial(n, 1/2) <= rank - 1) per side.
        if sum(math.comb(n, i) for i in range(rank)) / 2**n > tail:
            break
        k = rank
    if k < 1:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


async def _slice(side: Side, seconds: float, batch: int) -> None:
    assert side.bench is not None
    assert side.api is not None
    params = side.bench.params  # its submit_seconds: the slice's window
    servers = CpuWindow(servers=True)
    servers.start()
    if batch:  # the batch phase's load, with batches of ``batch``
        path, body, connections = "/api/tasks/batch", batch_body(batch), params.batch_connections
    else:
        path, body, connections = "/api/tasks", single_body(), params.client_connections
    load = await submit_load(side.bench, [side.api], path, body, connections)
    # The servers' CPU over warm-up and window both, over the submissions of both (the
    # window's rate held through the warm-up): a share to compare between the sides.
    pg_seconds = servers.stop().get("PostgreSQL", 0.0)
    if load.problems() != "none":
        raise RuntimeError(f"{side.label}: {load.ok} accepted; problems: {load.problems()}")
    tasks = load.ok * (batch or 1)
    side.rates.append(tasks / seconds)
    side.cpu_us.append(load.server_cores * seconds / tasks * 1e6)
    submitted = tasks * (params.warmup_seconds + seconds) / seconds
    side.pg_us.append(pg_seconds / submitted * 1e6)


async def _run(
    sides: list[Side], pairs: int, seconds: float, async_commit: bool, batch: int = 0
) -> None:
    for side in sides:
        await side.deploy.create()
        store = await Store.open(side.deploy.dsn)
        side.bench = Bench(side.deploy, store, Params(submit_seconds=seconds))
        if async_commit:
            await store.async_commit(side.deploy.name)
        side.deploy.phase = "ab"
        side.api = (await side.deploy.start_apis(1))[0]
    try:
        for pair in range(pairs):
            for index in slice_order(pair):
                await _slice(sides[index], seconds, batch)
            a, b = sides
            print(
                f"[ab] pair {pair + 1}/{pairs}: A {a.rates[-1]:,.0f}/s, B {b.rates[-1]:,.0f}/s, "
                f"B/A {b.rates[-1] / a.rates[-1]:.3f}",
                file=sys.stderr,
                flush=True,
            )
            for side in sides:
                assert side.bench is not None
                await side.bench.store.truncate_all(keep=(KEY_TABLE,))
    finally:
        for side in sides:
            if side.bench is not None:
                await side.bench.store.close()


def report(a: Side, b: Side, batch: int = 0) -> str:
    """Figures per task: per submission, or per task of the batches of ``batch``."""
    per = "task" if batch else "submission"
    ratios = [rb / ra for ra, rb in zip(a.rates, b.rates, strict=True)]
    cpu_ratios = [cb / ca for ca, cb in zip(a.cpu_us, b.cpu_us, strict=True)]
    low, high = median_interval(ratios)
    cpu_low, cpu_high = median_interval(cpu_ratios)
    lines = [
        a.label,
        b.label,
        f"pairs: {len(ratios)}",
        f"{f'batches of {batch}, tasks' if batch else 'single submit'}, median: "
        f"A {statistics.median(a.rates):,.0f}/s, "
        f"B {statistics.median(b.rates):,.0f}/s",
        f"API CPU per {per}, median: A {statistics.median(a.cpu_us):.1f} µs, "
        f"B {statistics.median(b.cpu_us):.1f} µs",
        f"PostgreSQL CPU per {per}, median: A {statistics.median(a.pg_us):.1f} µs, "
        f"B {statistics.median(b.pg_us):.1f} µs",
        f"throughput B/A per pair: median {statistics.median(ratios):.3f}, "
        f"95 % interval {low:.3f}-{high:.3f}",
        f"API CPU B/A per pair: median {statistics.median(cpu_ratios):.3f}, "
        f"95 % interval {cpu_low:.3f}-{cpu_high:.3f}",
        "ratios: " + " ".join(f"{r:.3f}" for r in ratios),
    ]
    return "\n".join(lines)


def _side(name: str, src: str | None, auth: bool) -> Side:
    settings = {}
    label = "this build"
    if src is not None:
        settings["PYTHONPATH"] = str(Path(src).resolve())
        label = f"the build in {src}"
    label += ", with a key on every request" if auth else ", open (no key exists)"
    return Side(f"{name}: {label}", Deployment(settings=settings, auth=auth))


def side_options(parser: argparse.ArgumentParser) -> None:
    """``--a-src``, ``--a-auth``, ``--b-src``, ``--b-auth``: which build each side runs, and
    whether it has a key that every request sends."""
    for side in ("a", "b"):
        name = side.upper()
        parser.add_argument(f"--{side}-src", help=f"{name}'s processes run this src first")
        parser.add_argument(
            f"--{side}-auth", action="store_true", help=f"{name}: a key on every request"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_submit", description=__doc__)
    side_options(parser)
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="both databases commit without waiting for the disk: less noise, same API work",
    )
    parser.add_argument("--pairs", type=int, default=20, help="pairs of slices (default 20)")
    parser.add_argument("--batch", type=int, default=0, help="batches of this many tasks")
    parser.add_argument("--seconds", type=float, default=5.0, help="a slice's window (5)")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.seconds <= 0 or args.batch < 0:
        parser.error("--pairs must be at least 1, --seconds above 0, --batch 0 or more")
    a = _side("A", args.a_src, args.a_auth)
    b = _side("B", args.b_src, args.b_auth)
    try:
        asyncio.run(_run([a, b], args.pairs, args.seconds, args.async_commit, args.batch))
    finally:
        problems = [p for side in (a, b) for p in side.deploy.close()]
        for problem in problems:
            print(problem, file=sys.stderr)
    print(report(a, b, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
