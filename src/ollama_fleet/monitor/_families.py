"""Building blocks of the monitor's scrape-time collector: histogram state and metric families."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

PREFIX = "ollama_fleet_"


class Histogram:
    """Counts of observations per bucket (upper bounds, ascending), their sum and count."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # a bucket's bound is inclusive (le), as Prometheus defines it
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs, ending with +Inf."""
        pairs: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        return pairs


class HistogramFamily(HistogramMetricFamily):
    def add(self, histogram: Histogram, labels: Sequence[str], *, skip_empty: bool = False) -> None:
        if skip_empty and histogram.count == 0:
            return
        self.add_metric(list(labels), histogram.cumulative(), histogram.total)


class Families:
    """Families by name, each made on first use, so many targets add samples to one family."""

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}

    def gauge(self, name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = GaugeMetricFamily(
                PREFIX + name, documentation, labels=labels
            )
        assert isinstance(family, GaugeMetricFamily)
        return family

    def counter(self, name: str, documentation: str, labels: Sequence[str]) -> CounterMetricFamily:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = CounterMetricFamily(
                PREFIX + name, documentation, labels=labels
            )
        assert isinstance(family, CounterMetricFamily)
        return family

    def histogram(self, name: str, documentation: str, labels: Sequence[str]) -> HistogramFamily:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = HistogramFamily(
                PREFIX + name, documentation, labels=labels
            )
        assert isinstance(family, HistogramFamily)
        return family

    def info(self, name: str, documentation: str, labels: Sequence[str]) -> InfoMetricFamily:
        """An info family: `name` without its `_info` suffix, which the exposition adds."""
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = InfoMetricFamily(
                PREFIX + name, documentation, labels=labels
            )
        assert isinstance(family, InfoMetricFamily)
        return family

    def done(self) -> list[Metric]:
        """The families that have samples, in the order they were first used."""
        return [family for family in self._by_name.values() if family.samples]
