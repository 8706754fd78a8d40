"""Measure taskflow on this machine and print a table: `python -m benchmarks.run [--smoke]`.

See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from benchmarks.bench import Bench, Params, Result
from benchmarks.deploy import Deployment, safe_url
from benchmarks.floors import FLOOR_ROWS, Floors
from benchmarks.measure import KIB_PER_MIB, Store, median, redis_version
from benchmarks.phases import OPTIONAL_PHASES, PEAK_ROWS, PHASES
from benchmarks.report import Report, Row, build_header, render

PHASE_NAMES = [name for name, *_ in PHASES]
DEFAULT_PHASES = [name for name in PHASE_NAMES if name not in OPTIONAL_PHASES]
STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- the runs -------------------------------------------------------------------------------


async def run_phases(
    deploy: Deployment, report: Report, phases: list[str], repeat: int, floors: Floors | None
) -> None:
    progress(f"creating database {deploy.name} and migrating")
    try:
        await deploy.create()
        store = await Store.open(deploy.dsn)
    except Exception as exc:
        for row in report.rows:
            row.error = f"setup failed: {exc}"
        return
    try:
        report.header["postgresql"]["server"] = await store.server_facts()
        report.header["redis"]["version"] = await redis_version(deploy.redis_url)
        if floors is not None:
            progress(f"floors: the probes in {floors.directory}, before the phases")
            await floors.measure("before")
        bench = Bench(deploy, store, report.params)
        for name, rows, function, repeatable in PHASES:
            if name not in phases:
                continue
            runs = repeat if repeatable else 1
            outcomes: list[dict[str, Result]] = []
            errors: list[str] = []
            for run in range(runs):
                progress(f"{name}: run {run + 1} of {runs}")
                try:
                    outcomes.append(await function(bench))
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    progress(f"{name}: failed: {errors[-1]}")
            for key, *_ in rows:
                _record(report.row(key), [o[key] for o in outcomes if key in o], errors, runs)
        await deploy.stop(list(deploy.processes))
        _record_peaks(deploy, report)
        if floors is not None:
            progress("floors: the probes again, after the phases")
            await floors.measure("after")
    finally:
        await store.close()


def _record(row: Row, results: list[Result], errors: list[str], runs: int) -> None:
    if not results:
        row.error = "; ".join(errors) or "not measured"
        return
    numbers = [r.value for r in results if isinstance(r.value, int | float)]
    last = results[-1]
    row.extra = last.extra
    row.notes = last.notes
    if not numbers:
        row.value = last.value
        return
    row.runs = numbers
    row.value = median(numbers)
    if len(numbers) > 1:
        row.notes += f"; median of {len(numbers)} runs: " + ", ".join(f"{n:.4g}" for n in numbers)
    if errors:
        row.notes += f"; {len(errors)} of {runs} runs failed: {errors[0]}"


def _record_peaks(deploy: Deployment, report: Report) -> None:
    for (key, _, _), role in zip(PEAK_ROWS, ("api", "worker"), strict=True):
        row = report.row(key)
        peaks = [p for p in deploy.peaks if p.role == role]
        if not peaks:
            row.error = f"no {role} process ran"
            continue
        top = max(peaks, key=lambda p: p.vm_hwm_kib)
        row.value = top.vm_hwm_kib / KIB_PER_MIB
        row.notes = (
            f"VmHWM, the highest of {len(peaks)} {role} processes (read before each was "
            f"stopped), in phase {top.phase}"
        )


# -- the header and the table -----------------------------------------------------------------


def _record_floors(report: Report, floors: Floors | None) -> None:
    """The floor rows (the mean of the probes' runs), then every row's ratio and target."""
    measured = {}
    for row in report.rows:
        if floors is None or not row.key.startswith("floor_") or row.error is not None:
            continue
        floor = floors.floor(row.key)
        if floor is None:
            row.error = floors.notes(row.key)
            continue
        row.value, row.runs, row.notes = floor, floors.values[row.key], floors.notes(row.key)
        measured[row.key] = floor
    report.judge(measured)


# -- the command ------------------------------------------------------------------------------


def _setting(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key.startswith("TASKFLOW_"):
        raise argparse.ArgumentTypeError(f"expected TASKFLOW_NAME=VALUE, got {raw!r}")
    return key, value


def _phases(raw: str) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PHASE_NAMES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASE_NAMES)}")
    return names


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Measure taskflow against the configured PostgreSQL and Redis "
        "(TASKFLOW_DATABASE_URL, TASKFLOW_REDIS_URL), in a database and key prefix of its own.",
    )
    parser.add_argument("--smoke", action="store_true", help="a few hundred tasks, < 1 minute")
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each cheap phase; the median is shown"
    )
    parser.add_argument(
        "--phases",
        type=_phases,
        default=DEFAULT_PHASES,
        help=f"comma-separated subset of {','.join(PHASE_NAMES)} "
        f"(default: all but {','.join(OPTIONAL_PHASES)})",
    )
    parser.add_argument("--apis", type=int, help="API processes for the submit phases (1)")
    parser.add_argument("--duration", type=float, help="seconds of each submit phase (10)")
    parser.add_argument("--drain-tasks", type=int, help="tasks queued for each drain (20000)")
    parser.add_argument(
        "--env",
        type=_setting,
        action="append",
        default=[],
        metavar="TASKFLOW_X=V",
        help="a setting for the taskflow processes, e.g. TASKFLOW_WORKER_CONCURRENCY=64",
    )
    parser.add_argument(
        "--floors",
        type=Path,
        metavar="DIR",
        help="run the probes drain_floor.py and pickup_floor.py of DIR before and after the "
        "phases, and show each figure as a ratio to its floor",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="make an API key in the benchmark's database (taskflow keys create) and send it "
        "with every request; each API must refuse a request without it",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.apis is not None and args.apis < 1):
        parser.error("--repeat and --apis must be at least 1")
    if args.auth and ("TASKFLOW_AUTH", "disabled") in args.env:
        parser.error("--auth measures an API that checks keys: drop --env TASKFLOW_AUTH=disabled")
    return args


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    params = (Params.smoke() if args.smoke else Params()).but(
        apis=args.apis, submit_seconds=args.duration, drain_tasks=args.drain_tasks
    )
    deploy = Deployment(settings=dict(args.env), auth=args.auth)
    atexit.register(deploy.close)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    floors = None
    if args.floors is not None:
        floors = Floors(
            args.floors,
            deploy.dsn,
            deploy.redis_url,
            params.floor_drain_tasks,
            params.floor_pickup_tasks,
        )
    labels = params.labels()
    rows = [
        Row(key, label.format(**labels), unit, required=False)
        for key, label, unit in (FLOOR_ROWS if floors else [])
    ]
    rows += [
        Row(key, label.format(**labels), unit)
        for name, phase_rows, *_ in PHASES
        if name in args.phases
        for key, label, unit in phase_rows
    ] + [Row(key, label, unit) for key, label, unit in PEAK_ROWS]
    report = Report(build_header(deploy, params, args.phases, argv), params, rows)
    progress(f"command: {report.header['command']}")
    progress(f"database {safe_url(deploy.describe()['database'])}, logs in {deploy.logs}")
    code = 0
    try:
        asyncio.run(run_phases(deploy, report, args.phases, args.repeat, floors))
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        code = 130
    finally:
        _record_floors(report, floors)
        for row in report.rows:
            if code == 130 and row.value is None and row.error is None:
                row.error = "interrupted"
        keep_logs = args.keep_logs or report.failed()
        problems = deploy.close(keep_logs=keep_logs)
        report.header["logs"] = str(deploy.logs) if keep_logs else "deleted at the end"
        for problem in problems:
            progress(problem)
        if keep_logs:
            progress(f"the processes' logs are kept in {deploy.logs}")
    print(render(report), flush=True)
    if report.failed() and code == 0:
        code = 1
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
