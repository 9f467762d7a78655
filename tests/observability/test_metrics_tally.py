"""The tally folds into exactly what prometheus-client would have recorded itself."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.metrics import DURATION_BUCKETS
from gateway.metrics_tally import Tally

# Values on, between, below and above the bounds: `le` means a value equal to a bound
# counts in that bound's bucket.
VALUES = [0.0, 0.0005, 0.00051, 0.001, 0.0042, 0.05, 0.05, 1.0, 29.9, 30.0, 31.0, 1e9]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples}


def pair() -> tuple[CollectorRegistry, Histogram, Counter]:
    r = CollectorRegistry()
    return (r, Histogram("d", "d", ["route"], buckets=DURATION_BUCKETS, registry=r),
            Counter("c", "c", ["route"], registry=r))


def test_folded_histograms_and_counters_equal_direct_updates() -> None:
    direct, d_hist, d_count = pair()
    tallied, t_hist, t_count = pair()
    tally = Tally()
    for round_ in range(3):  # several folds add up; an empty fold changes nothing
        for v in VALUES[round_:]:
            d_hist.labels("a").observe(v)
            d_count.labels("a").inc()
            tally.histogram(t_hist, ("a",)).observe(v)
            tally.count(t_count, ("a",))
        tally.fold()
        tally.fold()
        # Counts exactly; sums up to float rounding (added in another order).
        assert samples(tallied) == pytest.approx(samples(direct), rel=1e-12)


def test_nothing_reaches_the_collector_before_a_fold() -> None:
    registry, hist, count = pair()
    tally = Tally()
    tally.histogram(hist, ("a",)).observe(0.01)
    tally.count(count, ("a",))
    assert registry.get_sample_value("c_total", {"route": "a"}) == 0
    tally.fold()
    assert registry.get_sample_value("c_total", {"route": "a"}) == 1
    assert registry.get_sample_value("d_bucket", {"route": "a", "le": "0.01"}) == 1
    assert registry.get_sample_value("d_bucket", {"route": "a", "le": "0.005"}) == 0
    assert len(tally) == 2  # series are kept (bounded), their pending values are not
