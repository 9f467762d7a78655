"""Per-request observations in plain ints and floats, folded into prometheus-client.

A prometheus-client update takes a lock and, in multiprocess mode, writes to an mmap for
every value; per request that measured several times the cost of the counting itself.
So the request path adds to a `PendingCount` or `PendingHistogram` (one attribute
increment, one `bisect`), and `Tally.fold()` moves what accumulated into the collectors:
once a second, before every scrape, and when the worker stops. Each series is made on
first use and kept, with its collector child: label sets are bounded by construction
(see `gateway.metrics`), so the set of series is too.

Single-threaded by design: observations and folds all run on the event loop.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


class PendingCount:
    """A counter child's increments since the last fold."""

    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.n: float = 0  # whole counts mostly; a spend in currency units is a float

    def fold(self) -> None:
        if self.n:
            self.child.inc(self.n)
            self.n = 0


class PendingHistogram:
    """A histogram child's bucket counts and sum since the last fold."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any, bounds: tuple[float, ...]) -> None:
        self.child = child
        self.bounds = bounds
        # One slot per bound plus +Inf, as prometheus-client keeps them (not cumulative).
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (`le`).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def fold(self) -> None:
        if not any(self.counts):
            return
        # prometheus-client has no bulk observe: add to the child's per-bucket values and
        # sum, which is what `Histogram.observe` does one value at a time.
        for bucket, n in zip(self.child._buckets, self.counts, strict=True):
            if n:
                bucket.inc(n)
        self.child._sum.inc(self.total)
        self.counts = [0] * len(self.counts)
        self.total = 0.0


class Tally:
    """Every pending series of one registry, by (collector, label values)."""

    def __init__(self) -> None:
        self._series: dict[tuple[Any, tuple[str, ...]], PendingCount | PendingHistogram] = {}

    def counter(self, metric: Any, labels: tuple[str, ...]) -> PendingCount:
        key = (metric, labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = PendingCount(metric.labels(*labels))
        assert isinstance(series, PendingCount)
        return series

    def histogram(self, metric: Any, labels: tuple[str, ...]) -> PendingHistogram:
        key = (metric, labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = PendingHistogram(
                metric.labels(*labels), tuple(metric._upper_bounds[:-1]))
        assert isinstance(series, PendingHistogram)
        return series

    def count(self, metric: Any, labels: tuple[str, ...]) -> None:
        self.counter(metric, labels).n += 1

    def __len__(self) -> int:
        return len(self._series)

    def fold(self) -> None:
        for series in self._series.values():
            series.fold()
