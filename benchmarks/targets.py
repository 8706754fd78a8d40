"""Issue 10's targets: each figure as a ratio to its floor, and whether the target is met.

Speed moves by a factor of 2-3 between days on these shared machines, so a throughput or a
pickup latency is judged by its ratio to the floor measured in the same run (benchmarks/floors.py);
the lateness of a task's start is judged in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.lateness import KINDS
from benchmarks.phases import DRAINS


@dataclass(frozen=True)
class Target:
    """The value (or with ``relative``, its ratio to the floor of `FLOOR_OF`) must be at most
    or at least ``bound``; ``text`` is how the table writes it."""

    bound: float
    at_most: bool
    text: str
    relative: bool = False

    def met(self, measured: float) -> bool:
        return measured <= self.bound if self.at_most else measured >= self.bound


def _at_least(bound: float, text: str) -> Target:
    return Target(bound, False, f"≥ {text} x floor", relative=True)


def _at_most(bound: float) -> Target:
    return Target(bound, True, f"≤ {bound:g} x floor", relative=True)


#: The floor each taskflow figure is compared with: the throughputs with the drain floor (the
#: drains by their task timestamps: the "wall" rows include the workers' start-up), the pickup
#: latencies with the pickup floor's.
FLOOR_OF: Mapping[str, str] = {
    "submit_single": "floor_drain",
    "submit_batch": "floor_drain",
    **{f"{drain.key}_db": "floor_drain" for drain in DRAINS},
    "pickup_p50": "floor_pickup_p50",
    "pickup_p99": "floor_pickup_p99",
}

#: The issue's targets, at the shipped defaults.
TARGETS: Mapping[str, Target] = {
    "drain_2_db": _at_least(1 / 3, "1/3"),
    "pickup_p50": _at_most(1.2),
    "pickup_p99": _at_most(1.5),
    "submit_single": _at_least(1 / 5, "1/5"),
    "submit_batch": _at_least(1.5, "1.5"),
    **{f"lateness_{kind}_p50": Target(5.0, True, "≤ 5 ms") for kind in KINDS},
    **{f"lateness_{kind}_p99": Target(20.0, True, "≤ 20 ms") for kind in KINDS},
}


@dataclass(frozen=True)
class Verdict:
    floor: float | None = None  # the floor's value, when the figure has one and it was measured
    ratio: float | None = None  # value / floor
    target: str | None = None  # the target as the table writes it
    met: bool | None = None  # None: not judged (no value, or no floor)


def judge(key: str, value: float | str | None, floors: Mapping[str, float]) -> Verdict:
    """The row ``key`` with ``value`` against ``floors`` (floor row key -> value; a floor that
    was not measured is absent)."""
    target = TARGETS.get(key)
    text = target.text if target else None
    floor_key = FLOOR_OF.get(key)
    floor = floors.get(floor_key) if floor_key else None
    if not isinstance(value, int | float):
        return Verdict(floor, None, text)
    ratio = value / floor if floor else None
    if target is None:
        return Verdict(floor, ratio, None)
    measured = ratio if target.relative else value
    return Verdict(floor, ratio, text, None if measured is None else target.met(measured))
