"""The overview's two charts, drawn by the server as inline SVG: no script, no library.

Each bar and point carries a ``<title>`` (the minute and its figures), which browsers show
on hover and screen readers read; the figures are also in a table under each chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskflow.domain.throughput import Minute

WIDTH = 600
HEIGHT = 160
TOP = 10  # room for the largest value's label


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # the CSS class: succeeded, failed
    title: str


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    top_label: str  # what the top of the plot stands for
    bars: tuple[Bar, ...] = ()
    points: tuple[Point, ...] = ()

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _minute_label(minute: Minute) -> str:
    return minute.start.strftime("%H:%M UTC")


def throughput(minutes: Sequence[Minute]) -> Chart:
    """Tasks finished per minute: succeeded bars with the failed stacked on top."""
    slot = WIDTH / max(len(minutes), 1)
    peak = max((m.succeeded + m.failed for m in minutes), default=0) or 1
    scale = (HEIGHT - TOP) / peak
    bars = []
    for i, minute in enumerate(minutes):
        title = f"{_minute_label(minute)}: {minute.succeeded} succeeded, {minute.failed} failed"
        base = float(HEIGHT)
        for kind, count in (("succeeded", minute.succeeded), ("failed", minute.failed)):
            if count:
                height = count * scale
                base -= height
                bars.append(Bar(i * slot + 1, base, slot - 2, height, kind, title))
    return Chart(WIDTH, HEIGHT, f"{peak}/min", bars=tuple(bars))


def failure_rate(minutes: Sequence[Minute]) -> Chart:
    """Failed over finished (succeeded + failed) per minute, as a line from 0 to 100 %."""
    slot = WIDTH / max(len(minutes), 1)
    points = []
    for i, minute in enumerate(minutes):
        rate = minute.failure_rate
        if rate is None:
            continue
        y = HEIGHT - rate * (HEIGHT - TOP)
        title = f"{_minute_label(minute)}: {rate:.0%} of {minute.succeeded + minute.failed} failed"
        points.append(Point(i * slot + slot / 2, y, title))
    return Chart(WIDTH, HEIGHT, "100 %", points=tuple(points))
