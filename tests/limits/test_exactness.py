"""What each strategy promises (docs/rate-limits.md, "Strategy"), as properties: random
sequences of bursts, pauses and costs, on the memory store (a driven clock) and on a
real Redis (real time, concurrent charges), checked two ways:

  - the documented bound: no span ever admits more units than the strategy allows;
  - the decisions themselves: every verdict and every `left` equal those of a plain
    reference model of the promise, replayed at the instants the store reported.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from limits import parse

from gateway.stores import connect_mux
from gateway.stores.breaker import StoreBreaker
from gateway.stores.memory import MemoryRateLimitStore
from gateway.stores.rate_limits import Charge, limit_check
from gateway.stores.redis import RedisRateLimitStore
from gateway.stores.strategies import STRATEGIES
from tests.processes import RedisServer

S = 1_000_000  # µs
Step = tuple[float, int, int, int]  # (pause in windows, ± µs, concurrent charges, cost)
Admitted = list[tuple[int, int]]  # (instant, units) of every admitted charge
# Pauses in windows: edges (a unit's expiry, a refill, a window's end) are where a
# strategy goes wrong, so pauses land on and about them, not only anywhere.
PAUSES = [0.0, 0.0, 0.01, 0.05, 1 / 8, 1 / 3, 1 / 2, 0.8, 0.95, 1.0, 1.0, 1.2]


def steps(max_steps: int, jitter: int) -> st.SearchStrategy[list[Step]]:
    return st.lists(st.tuples(st.sampled_from(PAUSES), st.integers(-jitter, jitter),
                              st.integers(1, 6), st.sampled_from([0, 1, 1, 1, 2, 3])),
                    min_size=1, max_size=max_steps)


def span_units(admitted: Admitted, start: int, end: int) -> int:
    """Units admitted at instants in [start, end]."""
    return sum(u for t, u in admitted if start <= t <= end)


def check_bound(strategy: str, amount: int, window: int, admitted: Admitted) -> None:
    """The documented worst case of each strategy, over every span the run had."""
    instants = sorted({t for t, _ in admitted})
    if strategy == "gcra":  # a burst of `amount`, then one unit per `interval`
        interval = -(-window // amount)
        for a, b in itertools.combinations_with_replacement(instants, 2):
            assert span_units(admitted, a, b) <= amount + (b - a) // interval, (a, b)
        return
    for t in instants:  # every span shorter than a window, ending at an admission
        in_span = span_units(admitted, t - window + 1, t)
        assert in_span <= (amount if strategy == "moving-window" else 2 * amount), t
    if strategy != "moving-window":  # at most `amount` in each aligned window
        for index in {t // window for t in instants}:
            assert span_units(admitted, index * window, (index + 1) * window - 1) <= amount


class Reference:
    """Each promise written plainly (not as the store computes it): admit iff ..."""

    def __init__(self, strategy: str, amount: int, window: int):
        self.strategy, self.amount, self.window = strategy, amount, window
        self.interval = -(-window // amount)
        self.level, self.last = amount * self.interval, 0  # gcra: a full bucket, in µs
        self.admitted: Admitted = []

    def charge(self, now: int, cost: int) -> tuple[bool, int]:
        """(admitted, units left after it) at `now`."""
        n, w = self.amount, self.window
        if self.strategy == "gcra":  # a token bucket holding up to n units
            self.level = min(n * self.interval, self.level + now - self.last)
            self.last = now
            ok = self.level >= cost * self.interval
            if ok:
                self.level -= cost * self.interval
            return ok, self.level // self.interval
        if self.strategy == "moving-window":  # units charged in (now - w, now]
            used = span_units(self.admitted, now - w + 1, now)
        elif self.strategy == "fixed-window":  # units charged in this aligned window
            used = span_units(self.admitted, now // w * w, now)
        else:  # this window's units + the previous window's, weighted by its overlap
            start = now // w * w
            prev = span_units(self.admitted, start - w, start - 1)
            weighted = prev * (w - (now - start)) / w + span_units(self.admitted, start, now)
            ok = weighted + cost <= n
            if ok:
                self.admitted.append((now, cost))
            return ok, max(0, int((n - weighted - cost) // 1)) if ok else 0
        ok = used + cost <= n
        if ok:
            self.admitted.append((now, cost))
        return ok, n - used - cost


def verify(strategy: str, amount: int, window: int, charges: Sequence[tuple[Charge, int]]
           ) -> None:
    ref = Reference(strategy, amount, window)
    admitted: Admitted = []
    last = 0
    for i, (got, cost) in enumerate(charges):
        assert got.now >= last, "the store's clock went back"
        last = got.now
        ok, left = ref.charge(got.now, cost)
        assert got.admitted == ok, (i, got, cost)
        if ok:
            assert got.limits[0].left == left, (i, got)
            admitted.append((got.now, cost))
    check_bound(strategy, amount, window, admitted)


LIMITS = st.sampled_from(["1 per 1 second", "3 per 1 second", "5 per 2 second",
                          "8 per 1 second", "7 per 3 second"])


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=150, deadline=None, database=None)
@given(spec=LIMITS, plan=steps(max_steps=40, jitter=2), start=st.integers(0, 10 * S))
def test_memory_store_keeps_the_promise(strategy: str, spec: str, plan: list[Step],
                                        start: int) -> None:
    clock = [1_700_000_000 * S + start]
    store = MemoryRateLimitStore(strategy, clock=lambda: clock[0])
    item = parse(spec)
    window = item.get_expiry() * S
    limit = [limit_check(item, "t/acme")]

    async def run() -> list[tuple[Charge, int]]:
        out = []
        for pause, jitter, burst, cost in plan:
            clock[0] += max(0, round(pause * window) + jitter)
            for _ in range(burst):
                out.append((await store.charge(limit, cost), cost))
        return out

    verify(strategy, item.amount, window, asyncio.run(run()))


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


SCOPES = itertools.count()


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.sampled_from(["1 per 1 second", "3 per 1 second", "8 per 1 second"]),
       plan=steps(max_steps=8, jitter=0))
# Always tried: a full limit, then a charge just before its first unit frees.
@example(spec="3 per 1 second", plan=[(0.0, 0, 4, 1), (0.9, 0, 2, 1), (0.2, 0, 3, 1)])
def test_redis_store_keeps_the_promise(redis_url: str, strategy: str, spec: str,
                                       plan: list[Step]) -> None:
    item = parse(spec)
    limit = [limit_check(item, f"t/run{next(SCOPES)}")]

    async def run() -> list[tuple[Charge, int]]:
        client = connect_mux(redis_url)
        store = RedisRateLimitStore(client, StoreBreaker("redis", 3, 1.0, None), strategy, 30)
        out: list[tuple[Charge, int]] = []
        try:
            for pause, _, burst, cost in plan:
                await asyncio.sleep(pause * item.get_expiry())
                # Concurrent charges: Redis runs them in the order they were sent.
                got: list[Any] = await asyncio.gather(*(store.charge(limit, cost)
                                                        for _ in range(burst)))
                out += [(g, cost) for g in got]
        finally:
            await client.aclose()
        return out

    verify(strategy, item.amount, item.get_expiry() * S, asyncio.run(run()))
