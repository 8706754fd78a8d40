"""The API process alone, two builds alternated: uvicorn and the app on the in-memory store.

    .venv/bin/python -m benchmarks.ab_memory --a-src /tmp/before/src --b-auth [--pairs 16]

``benchmarks.ab_submit`` compares two real deployments, PostgreSQL and Redis included. When
the question is the API process's own CPU (its HTTP layer, its checks), this answers it
faster and with less noise: each side is one API process serving as ``taskflow api`` serves
(uvicorn, the API's protocol, garbage collection tuned) but on the in-memory store and queue,
so nothing else on the machine works for it. The load is the submit phase's (2 client
processes x 32 keep-alive connections), sent to one side then the other in slices, the order
alternating; the report is the median ratio B/A of throughput and of CPU per submission, with
their distribution-free 95 % intervals (``ab_submit.median_interval``).

``--a-src`` (``--b-src``): that side's process runs another build's ``src`` first on
``PYTHONPATH``; ``--a-auth`` (``--b-auth``): it has a key, which every request sends.
Single submissions only: the in-memory store keeps every task, and the millions a run of
batches would leave there weigh on the process's memory and garbage collection. Batches are
compared by ``ab_submit --batch`` (the tables emptied between pairs) or, in process, by
``asgi_submit --batch``.
``serve PORT KEYFILE`` is one side's process (the key written to KEYFILE, or ``-``: none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess  # nosec B404 - starts this same module, on this machine
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.ab_submit import median_interval, side_options, slice_order
from benchmarks.client import Headers, bearer, single_body, wait_until_up
from benchmarks.load import ClosedLoopSpec, closed_loop

HOST = "127.0.0.1"
CONNECTIONS = 32  # per client process, as the submit phase
CLIENTS = 2
WARMUP_SECONDS = 0.5
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Side:
    label: str
    src: str | None
    auth: bool
    port: int
    keyfile: Path
    process: subprocess.Popen[bytes] | None = None
    headers: Headers = ()
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def start(self) -> None:
        paths = [self.src] if self.src else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, str(ROOT)]))
        keyfile = str(self.keyfile) if self.auth else "-"
        command = [sys.executable, "-m", "benchmarks.ab_memory", "serve", str(self.port), keyfile]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT)  # nosec B603

    async def ready(self) -> None:
        assert self.process is not None
        process = self.process

        def alive() -> None:
            if process.poll() is not None:
                raise RuntimeError(f"{self.label}: the API process exited ({process.returncode})")

        await wait_until_up(HOST, self.port, "/health/live", timeout=60, alive=alive)
        if self.auth:
            self.headers = bearer(self.keyfile.read_text())

    async def slice(self, seconds: float) -> None:
        assert self.process is not None
        spec = ClosedLoopSpec(
            HOST,
            (self.port,),
            "/api/tasks",
            single_body(),
            CONNECTIONS,
            WARMUP_SECONDS,
            seconds,
            (self.process.pid,),
            self.headers,
        )
        load = await closed_loop(spec, CLIENTS)
        if load.ok == 0 or load.problems() != "none":
            raise RuntimeError(f"{self.label}: {load.ok} accepted; problems: {load.problems()}")
        self.rates.append(load.ok / seconds)
        self.cpu_us.append(load.server_cores * seconds / load.ok * 1e6)


def report(a: Side, b: Side) -> str:
    rates = [rb / ra for ra, rb in zip(a.rates, b.rates, strict=True)]
    cpu = [cb / ca for ca, cb in zip(a.cpu_us, b.cpu_us, strict=True)]
    lines = [
        f"{side.label}: {statistics.median(side.rates):,.0f}/s, "
        f"API CPU {statistics.median(side.cpu_us):.1f} µs per submission"
        for side in (a, b)
    ]
    for name, ratios in (("throughput", rates), ("CPU per submission", cpu)):
        low, high = median_interval(ratios)
        lines.append(
            f"B/A {name}: {statistics.median(ratios):.3f} ({low:.3f}-{high:.3f}, "
            f"95 %, {len(ratios)} pairs)"
        )
    return "\n".join(lines)


async def _run(sides: list[Side], pairs: int, seconds: float) -> None:
    for side in sides:
        side.start()
    for side in sides:
        await side.ready()
    for pair in range(pairs):
        for index in slice_order(pair):
            await sides[index].slice(seconds)
        a, b = sides
        print(
            f"[ab] pair {pair + 1}/{pairs}: B/A {b.rates[-1] / a.rates[-1]:.3f}",
            file=sys.stderr,
            flush=True,
        )


def _label(name: str, src: str | None, auth: bool) -> str:
    build = f"the build in {src}" if src else "this build"
    return f"{name}: {build}, {'with a key' if auth else 'open'}"


def compare(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_memory", description=__doc__)
    side_options(parser)
    parser.add_argument("--pairs", type=int, default=16, help="pairs of slices (default 16)")
    parser.add_argument("--seconds", type=float, default=2.0, help="a slice's window (2)")
    parser.add_argument("--port", type=int, default=18100, help="A's port; B's is the next")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.seconds <= 0:
        parser.error("--pairs must be at least 1 and --seconds above 0")
    with tempfile.TemporaryDirectory(prefix="taskflow-ab-") as folder:
        sides = [
            Side(_label(name, src, auth), src, auth, args.port + i, Path(folder, f"key{i}"))
            for i, (name, src, auth) in enumerate(
                (("A", args.a_src, args.a_auth), ("B", args.b_src, args.b_auth))
            )
        ]
        try:
            asyncio.run(_run(sides, args.pairs, args.seconds))
        finally:
            for side in sides:
                if side.process is not None:
                    side.process.terminate()
                    side.process.wait(timeout=30)
    print(report(*sides))
    return 0


async def serve(port: int, keyfile: str) -> None:
    """One side: the API on the in-memory store, served as ``taskflow api`` serves it."""
    import uvicorn

    import taskflow.entrypoints.http.app as app_module
    from benchmarks.asgi_submit import build_app
    from taskflow.entrypoints.startup import tune_gc_for_serving

    # No PostgreSQL here: nothing listens for tasks enqueued in callers' transactions.
    app_module.open_enqueued_listener = lambda *args, **kwargs: None  # type: ignore[assignment]
    app, headers = await build_app(with_key=keyfile != "-")
    for name, value in headers:
        if name == b"authorization":
            secret = value.decode().split(" ", 1)[1]
            await asyncio.to_thread(Path(keyfile).write_text, secret)
    try:  # the API's own protocol, in a build that has one
        from taskflow.entrypoints.http.head_limits import PROTOCOL as protocol
    except ImportError:
        protocol = "httptools"
    options: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "on"}
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, http=protocol, **options))
    asyncio.get_running_loop().call_later(1.0, tune_gc_for_serving)  # after start-up
    await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        asyncio.run(serve(int(argv[1]), argv[2]))
        return 0
    return compare(argv)


if __name__ == "__main__":
    sys.exit(main())
