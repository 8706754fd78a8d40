"""The floors: what bare Python reaches on this machine against the same PostgreSQL and Redis.

`--floors DIR` names a directory with the probes `drain_floor.py` and `pickup_floor.py` (see
the README beside them). Each is run with this Python, against the benchmark's own database and
the same Redis, before the taskflow phases and again after them; a floor is the mean of the runs
that worked. Each probe prints one line, parsed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

DRAIN_PROBE = "drain_floor.py"
PICKUP_PROBE = "pickup_floor.py"
DRAIN_PROCS = 2
DRAIN_BATCH = 100
PICKUP_RATE = 100  # tasks/s, fixed by the probe

FLOOR_ROWS = [
    (
        "floor_drain",
        f"drain floor: bare Python, {{floor_drain}} tasks, {DRAIN_PROCS} processes, "
        f"batches of {DRAIN_BATCH}",
        "tasks/s",
    ),
    ("floor_pickup_p50", f"pickup floor p50: bare Python at {PICKUP_RATE}/s", "ms"),
    ("floor_pickup_p99", f"pickup floor p99: bare Python at {PICKUP_RATE}/s", "ms"),
]

_NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
_DRAIN_LINE = re.compile(rf"drain floor: \d+ tasks, \d+ procs, batch \d+: {_NUMBER} tasks/s")
_PICKUP_LINE = re.compile(rf"pickup floor: \d+ tasks at .*: p50 {_NUMBER} ms, p99 {_NUMBER} ms")


class ProbeFailed(Exception):
    """A probe could not run, failed, or printed no line this module understands."""


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_drain(output: str) -> float:
    """tasks/s from the output of drain_floor.py (its last matching line)."""
    found = _DRAIN_LINE.findall(output)
    if not found:
        raise ProbeFailed(f"no 'drain floor: ...' line in {output.strip()[-300:]!r}")
    return _number(found[-1])


def parse_pickup(output: str) -> tuple[float, float]:
    """(p50, p99) in ms from the output of pickup_floor.py (its last matching line)."""
    found = _PICKUP_LINE.findall(output)
    if not found:
        raise ProbeFailed(f"no 'pickup floor: ...' line in {output.strip()[-300:]!r}")
    p50, p99 = found[-1]
    return _number(p50), _number(p99)


async def run_probe(script: Path, args: Sequence[str], timeout: float) -> str:
    """Run ``script`` with this Python; its standard output. The probe and the processes it
    starts are killed when it takes longer than ``timeout`` seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own group, so that its workers go with it
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip()[-500:]
        raise ProbeFailed(f"{script.name} exited with {process.returncode}: {tail}")
    return out.decode(errors="replace")


@dataclass
class Floors:
    """The probes' runs: every value measured, and what went wrong, per floor row."""

    directory: Path
    dsn: str
    redis_url: str
    drain_tasks: int
    pickup_tasks: int
    values: dict[str, list[float]] = field(default_factory=dict)
    runs: dict[str, list[str]] = field(default_factory=dict)  # "before: 5,100", "after: error"
    errors: dict[str, list[str]] = field(default_factory=dict)

    async def measure(self, when: str) -> None:
        """Run both probes once; ``when`` ("before", "after") names the run in the notes."""
        args = [self.dsn, self.redis_url]
        try:
            output = await run_probe(
                self.directory / DRAIN_PROBE,
                [*args, str(self.drain_tasks), str(DRAIN_PROCS), str(DRAIN_BATCH)],
                timeout=120 + self.drain_tasks / 100,
            )
            self._add(when, {"floor_drain": parse_drain(output)})
        except Exception as exc:  # a floor that fails leaves the taskflow rows alone
            self._fail(when, ["floor_drain"], exc)
        try:
            output = await run_probe(
                self.directory / PICKUP_PROBE,
                [*args, str(self.pickup_tasks)],
                timeout=60 + self.pickup_tasks / PICKUP_RATE,
            )
            p50, p99 = parse_pickup(output)
            self._add(when, {"floor_pickup_p50": p50, "floor_pickup_p99": p99})
        except Exception as exc:  # a floor that fails leaves the taskflow rows alone
            self._fail(when, ["floor_pickup_p50", "floor_pickup_p99"], exc)

    def _add(self, when: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.values.setdefault(key, []).append(value)
            shown = f"{value:,.0f} tasks/s" if key == "floor_drain" else f"{value:.2f} ms"
            self.runs.setdefault(key, []).append(f"{when} {shown}")

    def _fail(self, when: str, keys: list[str], exc: BaseException) -> None:
        text = f"{when}: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        for key in keys:
            self.errors.setdefault(key, []).append(text)
            self.runs.setdefault(key, []).append(f"{when} failed")

    def floor(self, key: str) -> float | None:
        """The mean of the runs that worked, or None when none did."""
        values = self.values.get(key)
        return statistics.fmean(values) if values else None

    def notes(self, key: str) -> str:
        if key not in self.runs:
            return "not measured"
        runs = ", ".join(self.runs[key])
        problems = "; ".join(self.errors.get(key, []))
        text = f"mean of the runs {runs}" if key in self.values else f"no run worked: {runs}"
        return text + (f"; {problems}" if problems else "")
