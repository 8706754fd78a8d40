"""Counters and histograms kept as plain numbers in this process, read by prometheus-client at
each scrape.

prometheus-client's own metric objects take a thread lock for every increment, and a
histogram looks for its bucket one bound at a time: a few microseconds an event, a tenth of a
no-op task's CPU in a worker. Every event taskflow counts happens on the process's event loop
thread, and a scrape is read on it too, so a tally is a float added to, and a histogram a
bucket found by bisection: a fraction of a microsecond. The API's several processes on one
port still use prometheus-client's objects, whose values its multiprocess mode shares.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Spread:
    """Observations by bucket (not cumulative: the scrape adds them up) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount


class _Family:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)


class TallyCounter(_Family):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, documentation, labelnames)
        self._children: dict[tuple[str, ...], Count] = {}

    def labels(self, *values: object) -> Count:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = Count()
        return child

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self._children.items():
            family.add_metric(key, child.value)
        return family


class TallyHistogram(_Family):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._children: dict[tuple[str, ...], Spread] = {}

    def labels(self, *values: object) -> Spread:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = Spread(self._bounds)
        return child

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for key, child in self._children.items():
            cumulative, seen = [], 0
            for edge, count in zip(edges, child.counts, strict=True):
                seen += count
                cumulative.append((edge, float(seen)))
            family.add_metric(list(key), cumulative, sum_value=child.total)
        return family


class Tallies:
    """A collector of tallies: register it in a ``CollectorRegistry``."""

    def __init__(self) -> None:
        self._families: list[TallyCounter | TallyHistogram] = []

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> TallyCounter:
        family = TallyCounter(name, documentation, labelnames)
        self._families.append(family)
        return family

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> TallyHistogram:
        family = TallyHistogram(name, documentation, labelnames, buckets)
        self._families.append(family)
        return family

    def collect(self) -> list[Metric]:
        return [family.collect() for family in self._families]
