"""RedisRateLimitStore (charge_limits.lua) against a real Redis, checked against `limits`
reading the same keys: windows, costs, several limits and the in-flight cap at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.stores import connect_mux, connect_redis
from gateway.stores.redis import RedisInFlightStore, RedisRateLimitStore

Check = tuple[RateLimitItem, tuple[str, ...]]


class Harness:
    def __init__(self, url: str):
        self.client = connect_redis(url)  # `limits`' client, and for reading the keys
        self.mux = connect_mux(url)
        self.inflight = RedisInFlightStore(self.mux, ttl=30)
        self.store = RedisRateLimitStore(self.mux, self.inflight)
        storage = storage_from_string("async+" + url, implementation="redispy",
                                      connection_pool=self.client.connection_pool,
                                      key_prefix="gw:rl")
        self.limits = MovingWindowRateLimiter(storage)

    async def llen(self, item: RateLimitItem, *ids: str) -> int:
        return int(await self.client.llen("gw:rl:" + item.key_for(*ids)))


def with_store(redis_server: Any, body: Callable[[Harness], Coroutine[Any, Any, None]]
               ) -> None:
    async def go() -> None:
        h = Harness(redis_server.url)
        try:
            await body(h)
        finally:
            await h.client.aclose()
            await h.mux.aclose()

    asyncio.run(go())


def test_windows_match_what_limits_reads(redis_server):
    item = parse("5 per 1 second")
    check: list[Check] = [(item, ("t", "acme"))]

    async def body(h: Harness) -> None:
        first = await h.store.charge(check, 3)
        assert first.admitted and first.stats[0].remaining == 5
        await asyncio.sleep(0.6)
        assert (await h.store.charge(check, 2)).admitted
        full = await h.store.charge(check, 1)
        assert full.refused == 0 and full.stats[0].remaining == 0
        assert await h.llen(item, "t", "acme") == 5  # the refusal pushed nothing
        # The first three age out; the last two are still in the window (found by the
        # binary search, since the list's tail is now outside the window).
        await asyncio.sleep(0.55)
        seen = await h.limits.get_window_stats(item, "t", "acme")
        got = await h.store.charge(check, 1)
        assert got.admitted
        assert got.stats[0].remaining == seen.remaining == 3
        assert abs(got.stats[0].reset_time - seen.reset_time) < 0.01
        assert 0 < got.stats[0].reset_time - got.now < 0.5
        after = await h.limits.get_window_stats(item, "t", "acme")
        assert after.remaining == 2
        assert await h.limits.test(item, "t", "acme", cost=2)
        assert not await h.limits.test(item, "t", "acme", cost=3)

    with_store(redis_server, body)


def test_several_limits_charge_all_or_nothing(redis_server):
    small, large = parse("2/minute"), parse("10/minute")
    checks: list[Check] = [(large, ("t", "acme")), (small, ("r", "acme", "a"))]

    async def body(h: Harness) -> None:
        assert (await h.store.charge(checks, 1)).admitted
        assert (await h.store.charge(checks, 1)).admitted
        refused = await h.store.charge(checks, 1)
        assert refused.refused == 1 and not refused.cap_full
        assert [s.remaining for s in refused.stats] == [8, 0]
        assert await h.llen(large, "t", "acme") == 2  # not charged for the refusal
        assert await h.llen(small, "r", "acme", "a") == 2
        # More than a limit's amount at once: refused outright, like limits' hit.
        assert (await h.store.charge([(large, ("t", "big"))], 11)).refused == 0
        assert await h.llen(large, "t", "big") == 0

    with_store(redis_server, body)


def test_in_flight_cap_is_part_of_the_same_charge(redis_server):
    item = parse("100/minute")
    checks: list[Check] = [(item, ("t", "acme"))]

    async def body(h: Harness) -> None:
        taken = await h.store.charge(checks, 1, cap=("acme", 2))
        assert taken.admitted and taken.slot is not None
        assert (await h.store.charge(checks, 1, cap=("acme", 2))).slot is not None
        full = await h.store.charge(checks, 1, cap=("acme", 2))
        assert full.cap_full and full.slot is None and full.refused is None
        assert await h.llen(item, "t", "acme") == 2  # the cap refused: nothing charged
        assert await h.inflight.count("acme") == 2
        await h.inflight.release("acme", taken.slot)
        again = await h.store.charge(checks, 1, cap=("acme", 2))
        assert again.admitted and again.stats[0].remaining == 98
        # A limit refusal takes no slot either.
        once = parse("1/minute")
        assert (await h.store.charge([(once, ("x",))], 1)).admitted
        refused = await h.store.charge([*checks, (once, ("x",))], 1, cap=("acme", 5))
        assert refused.refused == 1 and refused.slot is None
        assert await h.inflight.count("acme") == 2
        assert await h.llen(item, "t", "acme") == 3

    with_store(redis_server, body)


def test_expired_slots_do_not_count(redis_server):
    async def body(h: Harness) -> None:
        h.inflight.ttl_ms = 100  # a crashed replica's slots: never refreshed
        assert (await h.store.charge([], 1, cap=("acme", 1))).admitted
        assert (await h.store.charge([], 1, cap=("acme", 1))).cap_full
        await asyncio.sleep(0.15)
        assert (await h.store.charge([], 1, cap=("acme", 1))).admitted

    with_store(redis_server, body)


@pytest.mark.parametrize("cost", [1, 7000])
def test_large_costs_push_one_entry_per_unit(redis_server, cost):
    item = parse("10000/minute")

    async def body(h: Harness) -> None:
        assert (await h.store.charge([(item, ("t", "acme"))], cost)).admitted
        assert await h.llen(item, "t", "acme") == cost
        stats = await h.limits.get_window_stats(item, "t", "acme")
        assert stats.remaining == 10000 - cost

    with_store(redis_server, body)
